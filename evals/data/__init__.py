"""Vendored evaluation data (read-only package data).

``humaneval/``: HumanEval and the four HumanEval-infilling sets, MIT-licensed, copied from
the upstream repositories (openai/human-eval, openai/human-eval-infilling); see its LICENSE.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
HUMANEVAL_DIR = DATA_DIR / "humaneval"
