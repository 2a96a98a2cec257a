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


def read_lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """{package: (version, hashes)} of ``requirements/NAME.lock``; every pin must carry hashes."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in (ROOT / "requirements" / f"{name}.lock").read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not line.startswith(" "):
            requirement = text.split()[0]
            package, _, version = requirement.partition("==")
            assert version, f"{name}.lock: not pinned: {text}"
            current = canonical(package)
            pins[current] = (version, [])
        elif text.startswith("--hash=sha256:"):
            pins[current][1].append(text.split(":", 1)[1].rstrip(" \\"))
    return pins


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def pyproject_pins(*groups: str) -> dict[str, str]:
    requirements = list(PYPROJECT["project"]["dependencies"]) if "run" in groups else []
    for group in groups:
        requirements += [r for r in PYPROJECT["project"]["optional-dependencies"].get(group, []) if "==" in r]
    requirements += PYPROJECT["build-system"]["requires"]
    return {canonical(r.split("==")[0]): r.split("==")[1].split()[0] for r in requirements}


def test_the_locks_pin_with_hashes_exactly_what_pyproject_pins():
    run, test = read_lock("run"), read_lock("test")
    for lock, groups in ((run, ("run",)), (test, ("run", "dense", "training", "evals", "test"))):
        assert all(len(hashes) >= 1 and all(len(h) == 64 for h in hashes) for _, hashes in lock.values())
        for package, version in pyproject_pins(*groups).items():
            assert package in lock, f"{package} is pinned in pyproject.toml but missing from a lock: run `make lock`"
            # torch is locked as its CPU build (requirements/torch-cpu.txt): 2.13.0+cpu satisfies ==2.13.0
            assert lock[package][0].split("+")[0] == version, f"{package}: lock {lock[package][0]} != pyproject {version}"
    assert {p: v for p, (v, _) in run.items()} == {p: test[p][0] for p in run}, "run.lock disagrees with test.lock"
    assert run["torch"][0] == "2.13.0+cpu"
    pip = read_lock("pip")
    assert list(pip) == ["pip"] and pip["pip"][1] and (ROOT / "requirements" / "pip.in").read_text().strip() == f"pip=={pip['pip'][0]}"


def test_running_installs_no_test_training_or_eval_packages():
    run = read_lock("run")
    only_elsewhere = set(pyproject_pins("dense", "training", "evals", "test")) - set(pyproject_pins("run"))
    assert only_elsewhere and not only_elsewhere & set(run), only_elsewhere & set(run)


def test_a_command_whose_extra_is_missing_names_the_extra(monkeypatch, capsys):
    """`make run` leaves out the eval/training extras: their commands then say how to add them."""
    from repocomplete import cli

    # As if not installed; the submodule too, since an earlier test may have imported it.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setitem(cli.COMMANDS, "plot", ("matplotlib.pyplot:figure", "test"))
    assert cli.main(["plot"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'evals' extra" in err and "pip install -e '.[evals]'" in err, err


def test_npm_audit_output_is_told_apart_from_findings():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import audit
    finally:
        sys.path.pop(0)
    assert audit.npm_unreachable("npm warn audit 405 Method Not Allowed\nnpm error audit endpoint returned an error\n")
    assert audit.npm_unreachable("npm error code ENOTFOUND\nnpm error network request to https://registry.npmjs.org failed")
    assert not audit.npm_unreachable("# npm audit report\n\nsemver  <7.5.2\nSeverity: moderate\n1 moderate severity vulnerability")


def test_make_audit_runs_each_audit_or_says_plainly_why_not():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "audit.py")], capture_output=True, text=True, timeout=600)
    verdicts = [line for line in done.stdout.splitlines() if line.startswith(("pip-audit", "npm audit"))]
    assert [v.split()[0].rstrip(":") for v in verdicts] == ["pip-audit", "npm"], done.stdout
    for line in verdicts:
        assert "SKIPPED: " in line or "no known vulnerabilities" in line or "FOUND" in line, line
        if "SKIPPED" in line:
            assert len(line.split("SKIPPED: ", 1)[1]) > 20  # says why
    assert done.returncode == (1 if any("FOUND" in v for v in verdicts) else 0), done.stdout + done.stderr


def other_python() -> str | None:
    """A CPython other than 3.11 on this machine (PATH or pyenv), if any."""
    candidates = sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.1[2-9]*/bin/python3"))
    candidates += [shutil.which(f"python3.{minor}") for minor in (12, 13, 14)]
    runs = (c for c in candidates if c and subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0)
    return next(runs, None)


def test_make_refuses_another_python_with_a_clear_message(tmp_path):
    import pytest

    python = other_python()
    if python is None:
        pytest.skip("no CPython other than 3.11 here to try `make run` with")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    done = subprocess.run(["make", "run", f"PYTHON={python}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "make run needs Python 3.11" in done.stderr and "PYTHON=python3.11" in done.stderr, done.stderr
    # ... and says the code itself runs on 3.12/3.13, installed by hand as docs/install.md shows
    assert "3.11-3.13" in done.stderr and "docs/install.md (Python 3.12 and 3.13)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Installing" not in done.stdout


def test_make_run_installs_the_run_lock_with_hashes_and_shows_progress(tmp_path):
    """`make run`'s install: hash-checked, only what running needs, and pip's progress visible (no -q)."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    done = subprocess.run(["make", "-n", "run", f"PYTHON={sys.executable}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    import re

    # pip's own options (the $(...) that picks torch's index runs other commands)
    pip_lines = [re.sub(r"\$\([^)]*\)", "", line) for line in done.stdout.splitlines() if "-m pip install" in line]
    assert len(pip_lines) == 3 and not any(" -q" in line or "--quiet" in line for line in pip_lines), pip_lines
    assert "--require-hashes -r requirements/pip.lock" in pip_lines[0]  # pip itself first, hash-checked
    assert "--require-hashes" in pip_lines[1] and "-r requirements/run.lock" in pip_lines[1]
    assert "--no-deps --no-build-isolation -e ." in pip_lines[2] and "[test]" not in done.stdout
    assert "hash-pinned packages" in done.stdout  # the line announcing what is about to be installed


def test_requires_python_admits_exactly_the_versions_the_docs_support():
    from packaging.specifiers import SpecifierSet

    supported = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert [f"3.{minor}" for minor in range(9, 16) if f"3.{minor}.0" in supported] == ["3.11", "3.12", "3.13"]
    assert "## Python 3.11, 3.12 and 3.13" in (ROOT / "docs" / "install.md").read_text()


def test_the_torch_free_313_lock_pins_with_hashes_what_pyproject_pins_but_torch():
    """requirements/py313-notorch.lock: `make test-notorch`'s install (CI, Python 3.13), and the
    manual 3.12/3.13 install after PyPI's torch. Same pins as test.lock, torch and its CUDA packages left out."""
    lock, test = read_lock("py313-notorch"), read_lock("test")
    assert (ROOT / "requirements" / "notorch-excludes.txt").read_text().split("\n")[-2:] == ["torch", ""]
    assert all(hashes and all(len(h) == 64 for h in hashes) for _, hashes in lock.values())
    for package, version in pyproject_pins("run", "dense", "training", "evals", "test").items():
        if package == "torch":
            continue
        assert package in lock, f"{package} is pinned in pyproject.toml but missing from py313-notorch.lock: run `make lock`"
        assert lock[package][0] == version, f"{package}: py313-notorch.lock {lock[package][0]} != pyproject {version}"
    assert not {p for p in lock if p == "torch" or p.startswith(("nvidia-", "triton", "cuda-"))}, sorted(lock)


def test_make_test_notorch_installs_the_313_lock_without_torch_and_runs_pytest(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    done = subprocess.run(["make", "-n", "test-notorch", "NOTORCH_PYTHON=/opt/python3.13"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("/opt/python3.13 -m venv .venv-notorch" in line for line in lines), done.stdout
    installs = [line for line in lines if "-m pip install" in line]
    assert "--require-hashes --no-deps -r requirements/py313-notorch.lock" in installs[1], installs
    assert "--no-deps --no-build-isolation -e ." in installs[2], installs
    assert any(".venv-notorch/bin/python -m pytest" in line and "tests/" in line for line in lines), done.stdout
