"""Run summaries and reports: ``summary.json``, ``summary.md`` and PNG bar charts.

A run folder holds ``samples.jsonl`` (one record per sample, see :mod:`evals.runner`) and,
once scored, ``summary.json``::

    {"suite": "repo", "label": "transformers:default", "primary_metric": "exact_match",
     "settings": {"fused": {"exact_match": 0.31, "edit_similarity": 0.62, "n": 200}, ...},
     "meta": {...}}

``compare`` puts several runs side by side (models, adapters, retrieval settings).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from repocomplete.errors import RepocompleteError

SUMMARY_FILE = "summary.json"


def summarize(records: Iterable[dict]) -> dict[str, dict[str, float]]:
    """Mean of every metric per ``setting``, with the sample count ``n`` (settings in first-seen order)."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    order: list[str] = []
    for record in records:
        setting = record.get("setting", "all")
        if setting not in sums:
            order.append(setting)
        for metric, value in (record.get("metrics") or {}).items():
            if value is None:
                continue  # a metric that does not apply to this sample (no gold document, ...)
            sums[setting][metric] += float(value)
            counts[setting][metric] += 1
        counts[setting]["__n__"] += 1
    table: dict[str, dict[str, float]] = {}
    for setting in order:
        row = {metric: total / counts[setting][metric] for metric, total in sums[setting].items()}
        row["n"] = counts[setting]["__n__"]
        table[setting] = row
    return table


def metric_names(settings: dict[str, dict[str, float]]) -> list[str]:
    names: list[str] = []
    for row in settings.values():
        names += [m for m in row if m != "n" and m not in names]
    return names


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) > 1:
        return str(int(value))
    return f"{value:.3f}"


def markdown_table(rows: dict[str, dict[str, float]], first_column: str = "setting") -> str:
    """A GitHub Markdown table: one row per key, one column per metric (and ``n``)."""
    metrics = metric_names(rows)
    lines = ["| " + " | ".join([first_column, *metrics, "n"]) + " |", "|" + "---|" * (len(metrics) + 2)]
    for name, row in rows.items():
        lines.append("| " + " | ".join([name, *(_cell(row.get(m)) for m in metrics), _cell(row.get("n"))]) + " |")
    return "\n".join(lines)


def plot_bars(path: Path, rows: dict[str, dict[str, float]], metrics: Sequence[str], title: str) -> Path:
    """A grouped bar chart (one group per row, one bar per metric) written as PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or in CI
    import matplotlib.pyplot as plt

    labels = list(rows)
    width = 0.8 / max(1, len(metrics))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.9 * len(labels) * max(1, len(metrics)) * 0.5), 4.0))
    for i, metric in enumerate(metrics):
        values = [rows[label].get(metric) or 0.0 for label in labels]
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=metric)
    ax.set_xticks([x + width * (len(metrics) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plottable(rows: dict[str, dict[str, float]]) -> list[str]:
    """Metrics on a 0..1 scale (rates, similarities); latencies and counts get no bar."""
    return [m for m in metric_names(rows) if all(0.0 <= (r.get(m) or 0.0) <= 1.0 for r in rows.values())]


def write_run_report(out_dir: Path, summary: dict) -> list[Path]:
    """Write ``summary.json``, ``summary.md`` and ``summary.png`` into a run folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / SUMMARY_FILE
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    header = f"# {summary['suite']} — {summary['label']}\n\n"
    notes = "".join(f"- {k}: {v}\n" for k, v in (summary.get("meta") or {}).items())
    md_path = out_dir / "summary.md"
    md_path.write_text(header + markdown_table(summary["settings"]) + "\n\n" + notes, encoding="utf-8")
    paths = [json_path, md_path]
    metrics = _plottable(summary["settings"])
    if summary["settings"] and metrics:
        paths.append(plot_bars(out_dir / "summary.png", summary["settings"], metrics, f"{summary['suite']}: {summary['label']}"))
    return paths


def load_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        raise RepocompleteError(f"no {SUMMARY_FILE} in {run_dir}: not a finished eval run")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RepocompleteError(f"unreadable {path}: {exc}") from None


def compare(run_dirs: Sequence[Path], out_dir: Path | None = None) -> tuple[dict, str]:
    """Side-by-side table of several runs: rows are ``run label / setting``.

    Returns the comparison (JSON-able) and its Markdown; with ``out_dir`` also writes
    ``compare.json``, ``compare.md`` and ``compare.png`` (the primary metric of each row).
    """
    summaries = [load_summary(d) for d in run_dirs]
    rows: dict[str, dict[str, float]] = {}
    for run_dir, summary in zip(run_dirs, summaries):
        label = summary.get("label") or Path(run_dir).name
        for setting, values in summary["settings"].items():
            name = f"{label} / {summary['suite']}:{setting}"
            if name in rows:  # two runs with one label: tell them apart by folder
                name = f"{Path(run_dir).name} / {summary['suite']}:{setting}"
            rows[name] = values
    markdown = markdown_table(rows, first_column="run / setting")
    result = {"runs": [str(d) for d in run_dirs], "rows": rows}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "compare.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (out_dir / "compare.md").write_text("# Eval comparison\n\n" + markdown + "\n", encoding="utf-8")
        primaries = list(dict.fromkeys(s.get("primary_metric") for s in summaries if s.get("primary_metric")))
        metrics = [m for m in primaries if m in _plottable(rows)] or _plottable(rows)[:3]
        if rows and metrics:
            plot_bars(out_dir / "compare.png", rows, metrics, "eval comparison")
    return result, markdown
