"""The distribution's metadata builds quietly with the pinned build backend."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_build_backend_is_pinned():
    requires = PYPROJECT["build-system"]["requires"]
    assert requires and all("==" in requirement for requirement in requires), requires


def test_building_the_metadata_prints_no_deprecation(tmp_path):
    """setuptools deprecated the ``project.license`` table; an SPDX string builds without a warning."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    script = "import sys; from setuptools import build_meta; build_meta.prepare_metadata_for_build_wheel(sys.argv[1])"
    (tmp_path / "out").mkdir()
    done = subprocess.run([sys.executable, "-W", "default", "-c", script, str(tmp_path / "out")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Deprecat" not in done.stderr and "license" not in done.stderr.lower(), done.stderr
    metadata = next((tmp_path / "out").glob("*.dist-info")).joinpath("METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata
