"""Eval reports: bootstrap intervals (golden cases), Markdown with n and intervals, comparison plots."""

from __future__ import annotations

import json

import pytest

from evals.report import bootstrap_ci, compare, grouped_figure, markdown_table, summarize, write_run_report


def test_bootstrap_interval_golden_cases():
    assert bootstrap_ci([1.0] * 20) == (1.0, 1.0)
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    low, high = bootstrap_ci([0.0, 1.0] * 50)  # mean 0.5, standard error 0.05: about 0.40..0.60
    assert 0.38 < low < 0.42 and 0.58 < high < 0.62
    assert bootstrap_ci([0.0, 1.0] * 50) == (low, high)  # seeded: the same report twice


def test_summaries_carry_n_per_metric_and_intervals():
    records = [{"setting": "a", "metrics": {"em": float(i % 2), "ndcg": None if i % 3 else 1.0}} for i in range(12)]
    row = summarize(records)["a"]
    assert row["n"] == 12 and row["counts"] == {"em": 12, "ndcg": 4} and row["em"] == 0.5
    assert row["ci95"]["em"][0] < 0.5 < row["ci95"]["em"][1] and row["ci95"]["ndcg"] == [1.0, 1.0]
    table = markdown_table({"a": row})
    assert "| a | 0.500 [" in table and "| 12 |" in table and "95% bootstrap interval" in table


def run_dir(tmp_path, label, em_hits, es):
    records = [{"setting": setting, "metrics": {"exact_match": float(i < em_hits), "edit_similarity": es, "latency_ms": 120.0}}
               for setting in ("bm25", "a rather long retrieval setting name") for i in range(20)]
    summary = {"suite": "repo", "label": label, "primary_metric": "exact_match", "settings": summarize(records), "meta": {}}
    out = tmp_path / label.replace(":", "_")
    write_run_report(out, summary)
    return out


def test_compare_groups_bars_per_metric_one_colour_per_run_with_intervals_and_n(tmp_path):
    runs = [run_dir(tmp_path, "transformers:default", 5, 0.4), run_dir(tmp_path, "transformers:qwen2.5-coder-0.5b", 12, 0.7)]
    result, markdown = compare(runs, tmp_path / "cmp")
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 10_000
    assert "[" in markdown and "| 20 |" in markdown and "95% bootstrap" in (tmp_path / "cmp" / "compare.md").read_text()
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["rows"]

    by_run = {"run A": json.loads((runs[0] / "summary.json").read_text())["settings"],
              "run B": json.loads((runs[1] / "summary.json").read_text())["settings"]}
    fig = grouped_figure(by_run, ["exact_match", "edit_similarity"], "eval comparison")
    fig.canvas.draw()
    assert [ax.get_title() for ax in fig.axes] == ["exact_match", "edit_similarity"]  # a panel per metric
    for ax in fig.axes:
        bars = [c for c in ax.containers if hasattr(c, "patches")]
        assert [c.get_label() for c in bars] == ["run A", "run B"]  # one bar series per run in each panel
        colours = [c.patches[0].get_facecolor() for c in bars]
        assert len(set(colours)) == 2 and all(len(set(p.get_facecolor() for p in c.patches)) == 1 for c in bars)
        assert sum(len(c.patches) for c in bars) == 4  # 2 settings x 2 runs
        assert sum(t.get_text() == "n=20" for t in ax.texts) == 4  # n on every bar
        assert all(c.errorbar is not None for c in bars)  # the interval on every bar
    figure_box = fig.bbox
    texts = [fig.texts[0], *fig.legends[0].get_texts()]  # the title and the legend do not collide
    for ax in fig.axes:
        texts += [label for label in ax.get_xticklabels() if label.get_text()]
    boxes = [t.get_window_extent() for t in texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "overlapping labels"
    for text in fig.findobj(match=lambda a: hasattr(a, "get_text") and a.get_text()):
        box = text.get_window_extent()
        assert box.x0 >= figure_box.x0 - 1 and box.x1 <= figure_box.x1 + 1, f"clipped: {text.get_text()!r}"
        assert box.y0 >= figure_box.y0 - 1 and box.y1 <= figure_box.y1 + 1, f"clipped: {text.get_text()!r}"


def test_a_run_without_intervals_still_compares(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"suite": "fim", "label": "old", "primary_metric": "pass@1",
                                                  "settings": {"single_line": {"pass@1": 0.5, "n": 10}}}))
    _, markdown = compare([out], tmp_path / "cmp")
    assert "| old / fim:single_line | 0.500 | 10 |" in markdown
    with pytest.raises(Exception, match="summary.json"):
        compare([tmp_path / "missing"])
