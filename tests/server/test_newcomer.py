"""The newcomer's first hour, end to end: a fresh clone, the README's run command, then everything it
prints, used as printed: the curl example, the Neovim set-up in a real headless Neovim, the VS Code
settings against the extension's own schema.

The one shortcut: the clone's ``.venv`` is a real virtual environment (``python -m venv``) that
reaches the already-installed dependencies through a ``.pth`` file instead of downloading them again
(``make run`` would spend minutes and ~1 GB on it; the install itself is what `.ci/run` exercises,
building `.venv` from the same Makefile and locks before the suite runs). The clone's own code comes
first on its path, so the code under test is the clone's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import jsonschema_rs
import pytest

from server.quickstart import CURL_EXAMPLE
from tests.editors import complete_in_neovim
from tests.processes import read_until
from tests.server.conftest import ROOT
from tests.server.test_editor_setup import extension_settings_schema, printed_neovim_config, printed_vscode_settings


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(markdown: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```(?:sh|bash)\n(.*?)```", markdown, re.S)]


def test_readme_has_exactly_two_setup_commands_and_states_requirements():
    assert code_blocks(readme_section("Set up")) == ["make run", "make test"]
    requirements = readme_section("Requirements")
    for needle in ("Python 3.11", "Disk", "Memory", "Node.js 18+"):
        assert needle in requirements
    models = readme_section("Models")
    assert "embedded default model" in models and "models pull qwen2.5-coder-0.5b" in models
    assert "--model qwen2.5-coder-0.5b" in models and "--model default" in models


def readme_curl() -> tuple[dict, str]:
    """The request body of the README's curl example and the answer the README says it gives."""
    section = readme_section("Try it")
    command = code_blocks(section)[0]
    body = json.loads(shlex.split(command.replace("\\\n", " "))[-1])
    answer = re.search(r'"text": "([^"]*)"', section.split("```", 2)[2]).group(1)
    return body, answer


def test_readme_curl_example_is_the_one_run_prints():
    body, answer = readme_curl()
    assert body == CURL_EXAMPLE and answer


def fresh_clone(tmp_path: Path) -> Path:
    """``git clone`` of this repository's committed state, with a .venv that reuses our packages."""
    clone = tmp_path / "repocomplete"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    (site / "reuse-installed.pth").write_text(f"{clone}\n{sysconfig.get_paths()['purelib']}\n")
    script = venv / "bin" / "repocomplete"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom repocomplete.cli import main\n\n"
                      "if __name__ == '__main__':  # as pip writes console scripts: worker processes re-import it\n"
                      "    sys.exit(main())\n")
    script.chmod(0o755)
    earlier = time.time() - 60
    for name in ("pyproject.toml", "requirements/run.lock", "requirements/test.lock"):
        os.utime(clone / name, (earlier, earlier))
    for lock in ("run", "test"):  # the install is done: make must not redo it
        (venv / f".{lock}-installed").touch()
    return clone


@pytest.mark.slow
def test_a_newcomer_follows_the_readme_and_every_printed_instruction_works(tmp_path, processes):
    pytest.importorskip("torch", reason="serves a model: needs torch (absent in `make test-notorch`)")
    clone = fresh_clone(tmp_path)
    run_command = code_blocks(readme_section("Set up"))[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REPOCOMPLETE_DEBUG")}
    # The embedded model, whose answer the README shows: `run` would otherwise pull a catalogue model.
    env |= {"PYTHONUNBUFFERED": "1", "REPOCOMPLETE_CACHE_DIR": str(tmp_path / "cache"), "REPOCOMPLETE_MODEL": "default"}
    proc = processes.popen(["bash", "-c", run_command], cwd=clone, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)  # its own group, as in a terminal
    serving, output = read_until(proc, "Serving until Ctrl-C", 600)
    assert serving, output
    assert "Traceback" not in output and "Installing" not in output, output
    url = re.search(r"serving .* at (http://127\.0\.0\.1:\d+)", output).group(1)
    venv_python = str(clone / ".venv" / "bin" / "python")

    # 1. The printed curl example answers what the README says.
    curl = output.split("Try it:\n", 1)[1].split("\n  answers:", 1)[0]
    done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=300)
    reply = json.loads(done.stdout)
    _, readme_answer = readme_curl()
    assert reply["choices"][0]["text"] == readme_answer, (reply, readme_answer)
    assert f"answers: {readme_answer!r}" in output

    # 2. The printed Neovim set-up completes in a real headless Neovim.
    init_lua = printed_neovim_config(output)
    assert f'"{venv_python}"' in init_lua
    result = complete_in_neovim(processes, init_lua, "import os\n\nwith open(path) as f:\n    data = f.", tmp_path / "nvim",
                                env=env, wait_s=300)
    assert result["attached"] and result["items"] and result["items"][0], result

    # 3. The printed VS Code settings are valid for the packaged extension, and name the clone's venv.
    settings = printed_vscode_settings(output)
    jsonschema_rs.validate(extension_settings_schema(), settings)
    assert settings["repocomplete.pythonPath"] == venv_python and settings["repocomplete.serverUrl"] == url

    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group: make and the server
    rest, _ = proc.communicate(timeout=60)
    assert "Stopping." in rest and "Traceback" not in rest, rest
