"""Pure pieces of the default-model pipeline: golden cases for holes, definitions, schedule, licenses."""

from __future__ import annotations

import gzip
import json
import random

from pathlib import Path

import pytest

from training.pretrain.config import PretrainConfigError, TrainConfig, load_pretrain_config
from training.pretrain.corpus import HumanEvalFilter, is_permissive, looks_generated, split_of
from training.pretrain.data import GroupIndex, clip, definitions_in, make_hole
from training.pretrain.corpus import CorpusFile
from training.pretrain.train import lr_at

SOURCE = '''import os


class Reader:
    """Reads things."""

    def read(self, path):
        with open(path) as fh:
            return fh.read()


def helper(x):
    return x + 1
'''


def test_python_definitions_span_their_blocks():
    defs = {d.name: d for d in definitions_in("pkg/reader.py", SOURCE)}
    assert set(defs) == {"Reader", "read", "helper"}
    assert defs["read"].body == "    def read(self, path):\n        with open(path) as fh:\n            return fh.read()"
    assert (defs["helper"].start, defs["helper"].end) == (11, 14)


def test_racket_definitions_are_top_level_forms():
    text = "#lang racket\n(define (area r)\n  (* pi r r))\n\n(define answer 42)\n"
    defs = definitions_in("geo.rkt", text)
    assert [(d.name, d.body) for d in defs] == [("area", "(define (area r)\n  (* pi r r))"),
                                                 ("answer", "(define answer 42)")]


@pytest.mark.parametrize("kind", ["rest_of_line", "whole_line", "short_block", "random_span"])
def test_holes_reassemble_the_file(kind):
    for seed in range(20):
        hole = make_hole(SOURCE, random.Random(seed), kind)
        assert hole is not None
        assert hole.prefix + hole.middle + hole.suffix == SOURCE
        assert hole.middle.strip()


def test_rest_of_line_hole_stays_on_one_line():
    for seed in range(20):
        hole = make_hole(SOURCE, random.Random(seed), "rest_of_line")
        assert "\n" not in hole.middle and hole.suffix.startswith("\n")


def test_whole_line_hole_is_one_full_line_with_its_break_in_the_middle_or_the_suffix():
    breaks = set()
    for seed in range(40):
        hole = make_hole(SOURCE, random.Random(seed), "whole_line")
        assert hole.prefix == "" or hole.prefix.endswith("\n")
        if hole.middle.endswith("\n"):
            assert hole.middle.count("\n") == 1
        else:   # the cursor on an empty line, as an editor shows it
            assert "\n" not in hole.middle and (hole.suffix == "" or hole.suffix.startswith("\n"))
        breaks.add(hole.middle.endswith("\n"))
    assert breaks == {True, False}


def test_clip_keeps_whole_lines_near_the_hole():
    hole = make_hole(SOURCE, random.Random(3), "whole_line")
    clipped = clip(hole, 30, 30, random.Random(1))
    assert hole.prefix.endswith(clipped.prefix) and len(clipped.prefix) <= 30
    assert clipped.prefix == "" or hole.prefix[: -len(clipped.prefix)].endswith("\n")
    assert hole.suffix.startswith(clipped.suffix) and len(clipped.suffix) <= 30


def test_context_brings_definitions_of_names_used_in_the_hole_from_sibling_files():
    sibling = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/util.py", "pkg/pkg", "train",
                         "def frobnicate(value, scale=2):\n    return value * scale\n")
    target_text = "from .util import frobnicate\n\n\ndef run(v):\n    return frobnicate(v, scale=3)\n"
    target = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/main.py", "pkg/pkg", "train", target_text)
    index = GroupIndex([sibling, target])
    start = target_text.index("frobnicate(v")
    hole = make_hole(target_text, random.Random(0), "rest_of_line")
    hole.prefix, hole.middle, hole.suffix = target_text[:start], target_text[start:-1], "\n"
    snippets = index.context_for(hole, "pkg/main.py", (0, 5), 1000, random.Random(0))
    assert any(s.filepath == "pkg/util.py" and s.symbol == "frobnicate" for s in snippets)
    assert all(s.filepath != "pkg/main.py" for s in snippets)


def test_lr_schedule_warms_up_then_decays_to_min():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)
    assert lr_at(110, cfg) == pytest.approx(0.1)
    assert lr_at(500, cfg) == pytest.approx(0.1)


def test_split_is_stable_and_near_the_requested_share():
    splits = [split_of(f"stdlib:mod{i}.py", 0, 10.0) for i in range(2000)]
    assert splits == [split_of(f"stdlib:mod{i}.py", 0, 10.0) for i in range(2000)]
    assert 150 < splits.count("test") < 250


@pytest.mark.parametrize("license_text, expected", [
    ("MIT", True), ("BSD-3-Clause", True), ("Apache-2.0 OR BSD-2-Clause", True),
    ("Python Software Foundation License", True), ("MPL-2.0", False), ("GPL-3.0-or-later", False),
    ("LGPL-2.1 AND MIT", False), ("UNKNOWN", False),
])
def test_only_permissive_licenses_pass(license_text, expected):
    assert is_permissive(license_text) is expected


def test_minified_code_is_recognised():
    assert looks_generated("x=1;" * 400)
    assert looks_generated("# Generated by the protocol buffer compiler.  DO NOT EDIT!\nx = 1\n")
    assert not looks_generated(SOURCE)


def test_humaneval_functions_are_kept_out(tmp_path):
    problem = {"task_id": "HumanEval/0", "entry_point": "has_close_elements",
               "prompt": "from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    \"\"\"doc\"\"\"\n"}
    with gzip.open(tmp_path / "HumanEval.jsonl.gz", "wt") as fh:
        fh.write(json.dumps(problem) + "\n")
    he = HumanEvalFilter(str(tmp_path))
    assert he.contaminated("def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    pass\n", "a.py")
    assert not he.contaminated("def has_close_elements(xs):\n    pass\n", "b.py")
    assert he.dropped == ["a.py"]


def test_config_rejects_unknown_keys_and_applies_gpu_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\nhidden_size = 64\n[gpu.model]\nhidden_size = 128\n")
    assert load_pretrain_config(path).model.hidden_size == 64
    assert load_pretrain_config(path, gpu=True).model.hidden_size == 128
    path.write_text("[model]\nhiden_size = 64\n")
    with pytest.raises(PretrainConfigError, match="hiden_size.*valid: .*hidden_size"):
        load_pretrain_config(path)


def test_shipped_config_loads():
    cfg = load_pretrain_config(Path(__file__).parents[2] / "training/configs/default-model.toml")
    assert cfg.data.block_size == 1024 and "json" in cfg.corpus.eval_heldout
