"""bench/cpu_engines.py: the agreement column (golden) and a whole run on the tiny model."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("cpu_engines", ROOT / "bench" / "cpu_engines.py")
cpu_engines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpu_engines)


def test_agreement_compares_with_fp32_else_the_baseline_in_the_same_layout():
    rows = [{"engine": "mixed", "threads": 1, "texts": ["a", "b", "c", "d"]},
            {"engine": "mixed/spm", "threads": 1, "texts": ["a", "x", "c", "d"]},
            {"engine": "int8", "threads": 1, "texts": ["a", "b", "c", "e"]},
            {"engine": "int8/spm", "threads": 1, "texts": ["a", "x", "y", "z"]},
            {"engine": "int8", "threads": 2, "texts": ["a", "b", "c", "d"]}]
    cpu_engines.agreement(rows)
    assert [r["agree"] for r in rows] == [None, None, 0.75, 0.5, None]  # no 2-thread reference
    assert rows[3]["agree_with"] == "mixed/spm"
    rows.append({"engine": "fp32", "threads": 1, "texts": ["a", "b", "c", "e"]})
    cpu_engines.agreement(rows)
    assert rows[2]["agree"] == 1.0 and rows[2]["agree_with"] == "fp32" and rows[0]["agree"] == 0.75


def test_a_whole_run_on_the_tiny_model(tiny_model_dir, tmp_path):
    out = tmp_path / "rows.jsonl"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "cpu_engines.py"), "--model", str(tiny_model_dir),
                           "--engines", "mixed", "int8", "--reps", "2", "--plain", "--one-at-a-time",
                           "--prompt-tokens", "300", "--out", str(out)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["engine"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"mixed", "int8/spm"}
    assert rows["mixed"]["backend"]["decode_weights"] is None and rows["int8/spm"]["backend"]["decode_weights"] == "int8"
    for row in rows.values():
        assert row["reps"] == 2 and len(row["cold_ms"]) == 2 and row["prefill_tok_s"] > 0
        assert row["keystroke_cached_share"] > 0.5  # the keystroke reused the cached prompt
    assert rows["int8/spm"]["agree"] is None  # --plain: no baseline answer in the suffix-first layout to compare with
    assert "÷base" in done.stdout and "int8/spm" in done.stdout
