"""The VS Code extension: install, compile, its own tests (unit + the real server over JSON-RPC), package."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail_without

EXTENSION = Path(__file__).resolve().parents[2] / "extension"


def npm(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(["npm", *args], cwd=EXTENSION, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
@pytest.mark.network
def test_extension_builds_passes_its_tests_and_packages(tmp_path):
    pytest.importorskip("torch", reason="serves a model: needs torch (absent in `make test-notorch`)")
    skip_or_fail_without("npm")
    npm("ci", "--no-audit", "--no-fund")
    npm("run", "compile")
    tests = npm("test")
    passed = re.search(r"^# pass (\d+)$", tests.stdout, re.M)
    assert "# fail 0" in tests.stdout and passed and int(passed.group(1)) >= 6, tests.stdout[-2000:]
    vsix = tmp_path / "repocomplete.vsix"
    npm("exec", "--", "vsce", "package", "--out", str(vsix))
    with zipfile.ZipFile(vsix) as archive:
        names = archive.namelist()
    assert "extension/out/extension.js" in names and "extension/package.json" in names
    assert any(name.startswith("extension/node_modules/vscode-languageclient/") for name in names)
