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
    with pytest.raises(PretrainConfigError, match="hiden_size.*valid keys: .*hidden_size"):
        load_pretrain_config(path)


def test_shipped_config_loads():
    cfg = load_pretrain_config(Path(__file__).parents[2] / "training/configs/default-model.toml")
    assert cfg.data.block_size == 1024 and "json" in cfg.corpus.eval_heldout


def test_context_holds_the_window_most_like_the_prefix_end_so_its_next_line_can_be_copied():
    """Format 3: the sibling window that repeats the prefix's last lines, as the indexer's
    Jaccard source would retrieve it at serving time; never a window visible in the prompt."""
    repeated = ("    parser = make_parser(strict=True)\n    parser.feed(data)\n"
                "    result = parser.close()\n    return normalize_result(result)\n")
    sibling_text = "import os\n\n\ndef load(data):\n" + repeated + "\n\ndef other():\n    return os.getcwd()\n"
    sibling = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/loader.py", "pkg/pkg", "train", sibling_text)
    noise = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/noise.py", "pkg/pkg", "train",
                       "\n".join(f"value_{i} = compute_{i}(x)" for i in range(40)))
    target_text = "def parse(data):\n" + repeated
    target = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/main.py", "pkg/pkg", "train", target_text)
    index = GroupIndex([sibling, noise, target])
    cut = target_text.index("    return normalize_result")
    hole = make_hole(target_text, random.Random(0), "whole_line")
    hole.prefix, hole.middle, hole.suffix = target_text[:cut], target_text[cut:], ""
    windows = index.similar_windows(hole.prefix, "pkg/main.py", (0, 5), k=2)
    assert windows[0].path == "pkg/loader.py" and "return normalize_result(result)" in windows[0].body
    assert all(w.path != "pkg/main.py" for w in windows)              # the target is all visible
    snippets = index.context_for(hole, "pkg/main.py", (0, 5), 2000, random.Random(0), max_windows=1)
    jaccard = [s for s in snippets if s.source == "jaccard"]
    assert len(jaccard) == 1 and jaccard[0].filepath == "pkg/loader.py" and jaccard[0].start_line == 1
    assert len(index.context_for(hole, "pkg/main.py", (0, 5), 2000, random.Random(0), max_windows=0)) \
        == len(snippets) - 1                                         # format 2: definitions only


def test_windows_match_the_indexers_and_cover_the_file_end():
    from indexer.chunks import windows as indexer_windows
    from training.pretrain.data import windows_in

    text = "\n".join(f"line_{i} = {i}" for i in range(23))
    ours = [(w.start + 1, w.end, w.body) for w in windows_in("a.py", text)]
    lines = text.split("\n")
    theirs = [(c.start_line, c.end_line, c.body) for c in indexer_windows(lines, lines, 10, 5)]
    assert ours == theirs and ours[-1][1] == 23


def test_middle_mask_marks_the_middle_and_its_end_token_across_samples():
    import torch

    from training.pretrain.train import middle_mask

    MID, END = 5, 0
    seq = torch.tensor([[7, 8, MID, 9, 9, END, 7, MID, 9]])
    x, y = seq[:, :-1], seq[:, 1:]
    # targets:          8  MID 9  9  END 7  MID 9
    assert middle_mask(x, y, MID, END).int().tolist() == [[0, 0, 1, 1, 1, 0, 0, 1]]


def test_weighted_loss_equals_plain_loss_at_weight_one_and_leans_on_the_middle_above():
    import torch

    from training.pretrain.train import _loss

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Embedding(11, 11)

        def forward(self, input_ids, use_cache=False):
            return type("Out", (), {"logits": self.table(input_ids)})()

    torch.manual_seed(0)
    model = Logits()
    x, y = torch.randint(0, 11, (2, 6)), torch.randint(0, 11, (2, 6))
    ones = torch.ones(2, 6)
    assert torch.allclose(_loss(model, x, y, ones), _loss(model, x, y))
    only_first = torch.zeros(2, 6)
    only_first[:, 0] = 1.0
    logits = model(x).logits
    expected = torch.nn.functional.cross_entropy(logits[:, 0], y[:, 0])
    assert torch.allclose(_loss(model, x, y, only_first), expected)


def test_config_checks_the_fim_order_it_exports(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[export]\nfim_order = "spm"\n')
    assert load_pretrain_config(path).export.fim_order == "spm"
    path.write_text('[export]\ncontext_copy = 1.5\n')
    with pytest.raises(PretrainConfigError, match="context_copy is a weight between 0 and 1"):
        load_pretrain_config(path)
    path.write_text('[export]\nfim_order = "mps"\n')
    with pytest.raises(PretrainConfigError, match="fim_order must be 'psm' or 'spm'"):
        load_pretrain_config(path)


def test_copy_holes_are_lines_another_file_repeats_with_that_window_in_the_context():
    """Format 4: a copy hole's line (or its rest) is answered verbatim by a context window of
    the other file, which also holds lines before the repeat (what a retriever matches on)."""
    from training.pretrain.config import PretrainDataConfig
    from training.pretrain.data import file_samples
    from training.pretrain.tokenizer import EOS

    shared = "        result = normalize_payload(response.body, strict=self.strict)"
    sibling_text = "\n".join([f"value_{i} = compute_{i}(x)" for i in range(12)]
                             + ["class Client:", "    def fetch(self, response):", shared, "        return result"])
    sibling = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/client.py", "pkg/pkg", "train", sibling_text)
    target_text = "\n".join(["import os", "", "class Server:", "    def handle(self, response):", shared,
                             "        self.log(result)", "        return os.fspath(result)", ""])
    target = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/server.py", "pkg/pkg", "train", target_text)
    index = GroupIndex([sibling, target])
    assert index.copy_lines("pkg/server.py") == [4]               # only the repeated line qualifies
    window = index.copy_window("pkg/server.py", 4, random.Random(0))
    assert window.path == "pkg/client.py" and shared in window.body
    assert window.body.split("\n").index(shared) >= 3              # the lines before the repeat come along
    cfg = PretrainDataConfig(repo_fim_share=1.0, fim_share=0.0, doc_share=0.0, copy_holes=1.0, chars_per_sample=50)
    counts = {"repo_fim_middle_in_context": 0, "repo_fim_copy_holes": 0}
    samples = file_samples(target, index, cfg, 3.5, counts)
    assert samples and counts["repo_fim_copy_holes"] == len(samples) == counts["repo_fim_middle_in_context"]
    for kind, text in samples:
        assert kind == "repo_fim" and "<|rc:file|>pkg/client.py\n" in text
        middle = text.split("<|rc:middle|>", 1)[1].removesuffix(EOS)
        first = middle.split("\n")[0]
        assert len(first.strip()) >= 3 and shared.endswith(first)   # the repeated line, or its rest
    plain = file_samples(target, index, PretrainDataConfig(repo_fim_share=1.0, fim_share=0.0, doc_share=0.0,
                                                   chars_per_sample=50), 3.5, None)
    assert plain and all("<|rc:middle|>" in t for _, t in plain)  # copy_holes = 0: format 3 sampling


def test_config_rejects_shares_outside_zero_to_one(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\ncopy_holes = 1.5\n")
    with pytest.raises(PretrainConfigError, match="copy_holes"):
        load_pretrain_config(bad)


def test_similar_windows_overlapping_the_copy_window_are_left_out():
    shared = "        result = normalize_payload(response.body, strict=self.strict)"
    body = ["class Client:", "    def fetch(self, response):", "        response.check()", "        log(response)",
            shared, "        return result"]
    sibling = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/client.py", "pkg/pkg", "train", "\n".join(body))
    target_text = "\n".join(["class Server:", "    def fetch(self, response):", "        response.check()",
                             "        log(response)", shared, "        return result", ""])
    target = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/server.py", "pkg/pkg", "train", target_text)
    index = GroupIndex([sibling, target])
    copy = index.copy_window("pkg/server.py", 4, random.Random(0))
    hole = make_hole(target_text, random.Random(0), "whole_line", at=4)
    assert index.similar_windows(hole.prefix, "pkg/server.py", (0, 6), k=2)[0].path == "pkg/client.py"
    snippets = index.context_for(hole, "pkg/server.py", (0, 6), 4000, random.Random(0), max_windows=2, copy=copy)
    assert sum(s.source == "jaccard" for s in snippets) == 1    # the copy window, not its overlapping twin


def test_echo_holes_hold_the_files_own_window_around_the_hole():
    """Format 6: an echo sample's context holds a window of the file itself with the lines
    before the cursor and the answer's first line, verbatim (the plainest copy)."""
    from training.pretrain.config import PretrainDataConfig
    from training.pretrain.data import file_samples
    from training.pretrain.tokenizer import EOS

    text = "\n".join(f"    total_{i} = accumulate(values[{i}], weight={i * 7})" for i in range(40)) + "\n"
    target = CorpusFile("stdlib", "pkg", "PSF-2.0", "pkg/stats.py", "pkg/pkg", "train", text)
    index = GroupIndex([target])
    window = index.echo_window("pkg/stats.py", 17, random.Random(0))
    assert window.path == "pkg/stats.py" and window.start <= 17 < window.end
    assert window.body.split("\n")[17 - window.start] == text.split("\n")[17]
    cfg = PretrainDataConfig(repo_fim_share=1.0, fim_share=0.0, doc_share=0.0, echo_holes=1.0, chars_per_sample=50)
    counts = {"repo_fim_middle_in_context": 0, "repo_fim_copy_holes": 0, "repo_fim_echo_holes": 0}
    samples = file_samples(target, index, cfg, 3.5, counts)
    assert samples and counts["repo_fim_echo_holes"] == len(samples) and counts["repo_fim_copy_holes"] == 0
    for kind, sample in samples:
        assert kind == "repo_fim"
        context, _, rest = sample.partition("<|rc:file|>pkg/stats.py\n<|rc:")   # the snippet precedes the file
        middle = sample.split("<|rc:middle|>", 1)[1].removesuffix(EOS)
        first = middle.split("\n")[0].strip()
        assert "<|rc:file|>pkg/stats.py\n" in context or "pkg/stats.py" in sample.split("<|rc:middle|>")[0]
        snippet_bodies = sample.split("<|rc:suffix|>")[0] + sample.split("<|rc:prefix|>")[0]
        assert first in snippet_bodies or not first    # the answer's first line is in the context


def test_echo_holes_is_a_share(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\necho_holes = -0.1\n")
    with pytest.raises(PretrainConfigError, match="echo_holes"):
        load_pretrain_config(bad)


def test_no_config_default_is_a_path_of_one_machine(tmp_path, monkeypatch):
    import sysconfig

    monkeypatch.setenv("REPOCOMPLETE_CACHE_DIR", str(tmp_path / "cache"))
    cfg = load_pretrain_config(Path(__file__).parents[2] / "training/configs/default-model.toml")
    assert cfg.corpus.stdlib_root == sysconfig.get_paths()["stdlib"]
    assert (Path(cfg.corpus.humaneval_dir) / "HumanEval.jsonl.gz").is_file()
    assert cfg.resolved_run_dir() == tmp_path / "cache" / "pretrain-runs" / "default-model"
    gpu = load_pretrain_config(Path(__file__).parents[2] / "training/configs/default-model.toml", gpu=True)
    assert gpu.resolved_run_dir().name == "default-model-gpu"
    text = (Path(__file__).parents[2] / "training/configs/default-model.toml").read_text()
    assert not [line for line in text.splitlines() if '= "/' in line]


def test_a_wrongly_typed_value_is_a_one_line_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nhidden_size = "big"\n')
    with pytest.raises(PretrainConfigError, match=r"hidden_size \(in \[model\] of .*c.toml\).*'big' is not int"):
        load_pretrain_config(path)
