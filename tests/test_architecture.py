"""The import direction of DESIGN.md, enforced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower() or "0 broken" in result.stdout.lower()


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


HEAVY = {"torch", "transformers", "peft", "bitsandbytes", "accelerate"}


def test_cli_help_and_indexer_do_not_import_torch():
    loaded = _modules_loaded_by("import repocomplete.cli, indexer, indexer.types")
    assert not (HEAVY & loaded), HEAVY & loaded


def test_cli_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "repocomplete", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("complete", "index", "context", "serve", "lsp", "finetune", "pretrain", "eval"):
        assert command in out.stdout


def test_unknown_command_is_a_one_line_error():
    out = subprocess.run([sys.executable, "-m", "repocomplete", "frobnicate"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown command" in out.stderr and "Traceback" not in out.stderr
