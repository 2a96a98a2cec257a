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
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from repocomplete.errors import RepocompleteError

SUMMARY_FILE = "summary.json"


#: Keys of a summary row that are not metrics.
ROW_EXTRAS = ("n", "ci95", "counts")
#: Summary keys holding a table of rows (like ``settings``) that run reports also show.
EXTRA_TABLES = ("adapter_vs_base",)
#: Bootstrap resamples for the confidence intervals (seeded: a report is reproducible).
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci(values: Sequence[float], level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (a point for fewer than two values)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        mean = float(data.mean()) if len(data) else float("nan")
        return mean, mean
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def ratio_ci(numerators: Sequence[float], denominators: Sequence[float], level: float = 0.95,
             resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum(numerators) / sum(denominators)`` over samples
    (a micro-average, e.g. characters saved per character typed over replayed blocks)."""
    import numpy as np

    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if len(num) < 2 or not den.sum():
        point = float(num.sum() / den.sum()) if len(num) and den.sum() else float("nan")
        return point, point
    picks = np.random.default_rng(seed).integers(0, len(num), size=(resamples, len(num)))
    sums = den[picks].sum(axis=1)
    ratios = np.divide(num[picks].sum(axis=1), sums, out=np.zeros(resamples), where=sums > 0)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def summarize(records: Iterable[dict]) -> dict[str, dict]:
    """Per ``setting``: the mean of every metric, the sample count ``n``, and per metric the number of
    samples it applies to (``counts``) and a 95% bootstrap interval of the mean (``ci95``)."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    samples: dict[str, int] = defaultdict(int)
    for record in records:
        setting = record.get("setting", "all")
        samples[setting] += 1
        for metric, value in (record.get("metrics") or {}).items():
            if value is not None:  # None: a metric that does not apply to this sample (no gold document, ...)
                values[setting][metric].append(float(value))
    table: dict[str, dict] = {}
    for setting, n in samples.items():  # first-seen order
        row: dict = {metric: sum(v) / len(v) for metric, v in values[setting].items()}
        row["n"] = n
        row["counts"] = {metric: len(v) for metric, v in values[setting].items()}
        row["ci95"] = {metric: list(bootstrap_ci(v)) for metric, v in values[setting].items()}
        table[setting] = row
    return table


def metric_names(settings: dict[str, dict]) -> list[str]:
    names: list[str] = []
    for row in settings.values():
        names += [m for m in row if m not in ROW_EXTRAS and m not in names]
    return names


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int) or float(value).is_integer() and abs(value) > 1:
        return str(int(value))
    return f"{value:.3f}"


def _with_interval(row: dict, metric: str) -> str:
    cell = _cell(row.get(metric))
    interval = (row.get("ci95") or {}).get(metric)
    if interval is None or cell == "-" or interval[0] == interval[1]:
        return cell
    return f"{cell} [{interval[0]:.3f}, {interval[1]:.3f}]"


def markdown_table(rows: dict[str, dict], first_column: str = "setting") -> str:
    """A GitHub Markdown table: one row per key, one column per metric (mean [95% bootstrap interval]), and ``n``."""
    metrics = metric_names(rows)
    lines = ["| " + " | ".join([first_column, *metrics, "n"]) + " |", "|" + "---|" * (len(metrics) + 2)]
    for name, row in rows.items():
        lines.append("| " + " | ".join([name, *(_with_interval(row, m) for m in metrics), _cell(row.get("n"))]) + " |")
    if any(row.get("ci95") for row in rows.values()):
        lines.append(f"\nIn brackets: 95% bootstrap interval of the mean ({BOOTSTRAP_RESAMPLES} resamples); n: samples.")
    return "\n".join(lines)


def plot_grouped(path: Path, runs: dict[str, dict[str, dict]], metrics: Sequence[str], title: str) -> Path:
    """:func:`grouped_figure` written as PNG."""
    import matplotlib.pyplot as plt

    fig = grouped_figure(runs, metrics, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # tight: long labels are never clipped
    plt.close(fig)
    return path


def grouped_figure(runs: dict[str, dict[str, dict]], metrics: Sequence[str], title: str):
    """Grouped bars (Agg backend): one panel per metric, a group per setting, one bar (one colour)
    per run, each with its 95% interval as an error bar and its ``n`` written on it.

    ``runs``: run label -> setting -> summary row (as :func:`summarize` makes them).
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or in CI
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(s for rows in runs.values() for s in rows))
    colours = plt.get_cmap("tab10").colors
    width = 0.8 / max(1, len(runs))
    panel_width = max(3.5, 0.9 + len(settings) * len(runs) * 0.45)
    fig, axes = plt.subplots(1, len(metrics), figsize=(panel_width * len(metrics), 4.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for r, (label, rows) in enumerate(runs.items()):
            xs, heights, errors, ns = [], [], [[], []], []
            for x, setting in enumerate(settings):
                row = rows.get(setting)
                if row is None or row.get(metric) is None:
                    continue
                value = float(row[metric])
                low, high = (row.get("ci95") or {}).get(metric, (value, value))
                xs.append(x + (r - (len(runs) - 1) / 2) * width)
                heights.append(value)
                errors[0].append(max(0.0, value - low))
                errors[1].append(max(0.0, high - value))
                ns.append((row.get("counts") or {}).get(metric, row.get("n")))
            bars = ax.bar(xs, heights, width, yerr=errors, capsize=3, color=colours[r % len(colours)], label=label)
            for bar, n in zip(bars, ns):
                ax.annotate(f"n={n}", (bar.get_x() + bar.get_width() / 2, 0), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7, rotation=90 if len(runs) > 3 else 0)
        ax.set_title(metric)
        ax.set_xticks(range(len(settings)))
        # wrapped, and turned when there are many: neighbouring labels never run into each other
        many = len(settings) > max(2, len(runs))
        ax.set_xticklabels([textwrap.fill(name, 14) for name in settings], rotation=30 if many else 0,
                           ha="right" if many else "center", fontsize=8)
        top = max([1.0, *(float(rows[s].get(metric) or 0) for rows in runs.values() for s in rows)])
        ax.set_ylim(0, top * 1.08)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(f"{title}  (error bars: 95% bootstrap interval)", fontsize=10, y=0.99)
    columns = max(1, min(len(runs), int(panel_width * len(metrics) // 3.2)))
    legend_rows = -(-len(runs) // columns)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.94), ncol=columns, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.90 - 0.05 * legend_rows))
    return fig


def _plottable(rows: dict[str, dict]) -> list[str]:
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
    # a suite's comparison table (e.g. repo's adapter_vs_base), rendered like the settings
    extra = "".join(f"\n## {name}\n\n{markdown_table(summary[name], 'row')}\n" for name in EXTRA_TABLES if summary.get(name))
    md_path.write_text(header + markdown_table(summary["settings"]) + "\n" + extra + "\n" + notes, encoding="utf-8")
    paths = [json_path, md_path]
    metrics = _plottable(summary["settings"])
    if summary["settings"] and metrics:
        paths.append(plot_grouped(out_dir / "summary.png", {summary["label"]: summary["settings"]}, metrics,
                                  f"{summary['suite']}: {summary['label']}"))
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
    ``compare.json``, ``compare.md`` and ``compare.png`` (every 0..1 metric, grouped by setting,
    one colour per run, with intervals and n).
    """
    summaries = [load_summary(d) for d in run_dirs]
    rows: dict[str, dict] = {}
    runs: dict[str, dict[str, dict]] = {}
    for run_dir, summary in zip(run_dirs, summaries):
        label = summary.get("label") or Path(run_dir).name
        if label in runs:  # two runs with one label: tell them apart by folder
            label = f"{label} ({Path(run_dir).name})"
        runs[label] = {}
        for setting, values in summary["settings"].items():
            runs[label][f"{summary['suite']}:{setting}"] = values
            rows[f"{label} / {summary['suite']}:{setting}"] = values
    markdown = markdown_table(rows, first_column="run / setting")
    result = {"runs": [str(d) for d in run_dirs], "rows": rows}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "compare.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (out_dir / "compare.md").write_text("# Eval comparison\n\n" + markdown + "\n", encoding="utf-8")
        primaries = list(dict.fromkeys(s.get("primary_metric") for s in summaries if s.get("primary_metric")))
        plottable = _plottable(rows)
        metrics = [m for m in primaries if m in plottable] + [m for m in plottable if m not in primaries]
        if rows and metrics:
            plot_grouped(out_dir / "compare.png", runs, metrics[:4], "eval comparison")
    return result, markdown
