"""The user guide (docs/) as a user runs it: every `sh` block that can run here, runs, and succeeds.

Blocks run with bash from the repository root, with ``~`` a temporary home holding ``~/src/myrepo``
(a git repository) and a ``repocomplete serve`` (fake backend, so answers are instant) standing in for
``http://127.0.0.1:8765``. A block that cannot run here is marked in the page, just above it, with
``<!-- docs-test: skip: why -->`` (a server that runs until Ctrl-C, a download, a GPU, minutes of
training); the reason is required.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.conftest import ROOT, start_server

DOCS = ROOT / "docs"
GUIDE = ["install.md", "run.md", "editors.md", "api.md", "configuration.md", "finetuning.md", "evals.md",
         "troubleshooting.md"]
SKIP = re.compile(r"<!-- docs-test: skip: (.+?) -->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
APP = "import json\n\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n"


def command_blocks(page: str) -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason or None) of every sh/bash block of ``page``."""
    lines = (DOCS / page).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match and match.group(1):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if match.group(1) in ("sh", "bash"):
                skip = SKIP.match(lines[i - 1]) if i else None
                blocks.append((i + 1, "\n".join(lines[i + 1:end]), skip.group(1) if skip else None))
            i = end
        i += 1
    return blocks


def test_the_guide_has_every_page_linked_from_its_index():
    index = (DOCS / "README.md").read_text()
    for page in GUIDE:
        assert (DOCS / page).exists() and f"({page})" in index, page
    skipped = [(page, line) for page in GUIDE for line, _, reason in command_blocks(page) if reason is not None]
    assert all(reason.strip() for page in GUIDE for _, _, reason in command_blocks(page) if reason is not None)
    runnable = [(page, line) for page in GUIDE for line, _, reason in command_blocks(page) if reason is None]
    assert len(runnable) > len(skipped)  # the guide is mostly commands that run


@pytest.fixture(scope="module")
def user_home(tmp_path_factory):
    """A home with ~/src/myrepo (and ~/src/other) and a server in place of the default address."""
    home = tmp_path_factory.mktemp("home")
    for name in ("myrepo", "other"):
        repo = home / "src" / name
        shutil.copytree(Path(sys.modules["json"].__file__).parent, repo / "jsonlib", ignore=shutil.ignore_patterns("__pycache__"))
        (repo / "app.py").write_text(APP)
        subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    env = {"HOME": str(home), "REPOCOMPLETE_CACHE_DIR": str(home / "cache"), "REPOCOMPLETE_FAKE_TEXT": "load(f)\n"}
    served = start_server(home, "--workspace", str(home / "src" / "myrepo"), "--allow-root", str(home / "src"), env=env)
    yield home, served
    served.stop()


@pytest.mark.slow
@pytest.mark.parametrize("page", GUIDE)
def test_every_runnable_command_block_of_the_guide_succeeds(page, user_home, tmp_path):
    home, served = user_home
    env = {k: v for k, v in os.environ.items() if k not in ("REPOCOMPLETE_DEBUG",)}
    env |= {"HOME": str(home), "REPOCOMPLETE_CACHE_DIR": str(home / "cache"), "REPOCOMPLETE_MODEL": "default",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT)}
    for line, code, skip in command_blocks(page):
        if skip is not None:
            continue
        script = code.replace("http://127.0.0.1:8765", served.url).replace("runs/", f"{tmp_path}/runs/")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        where = f"docs/{page}:{line}"
        assert done.returncode == 0, f"{where} failed:\n{code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stdout + done.stderr, where
        assert '{"error"' not in done.stdout, f"{where} answered an error:\n{done.stdout[-2000:]}"


def test_the_configuration_reference_is_generated_from_the_code_and_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_reference.py"), "--check"], capture_output=True,
                          text=True, timeout=120, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr


def test_every_environment_variable_the_code_reads_is_documented():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import config_reference
    finally:
        sys.path.pop(0)
    documented = config_reference.field_environment() | set(config_reference.OTHER_ENVIRONMENT)
    used = set()
    for package in ("repocomplete", "indexer", "server", "lsp", "training", "evals", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            used |= set(re.findall(r"\b(REPOCOMPLETE_[A-Z][A-Z0-9_]*[A-Z0-9])\b", path.read_text()))
    assert used - documented == set(), f"undocumented: {sorted(used - documented)}"
