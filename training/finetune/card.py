"""``README.md`` of a fine-tuned adapter: our model card, from the run's recorded facts only.

peft's ``save_pretrained`` writes Hugging Face's empty model-card template; the adapter folder
gets this card instead: which base (name and sha256) it belongs to, what data it saw, how long
it trained, the held-out loss and next-line exact match before and after, whether training
improved on the base at all, and the commands that serve and reproduce it.
"""

from __future__ import annotations

import shlex
from pathlib import Path


def _split_sentence(repos: list[dict]) -> str:
    """How the held-out samples were chosen, in the words of the split the manifest records."""
    methods = {r.get("split", {}).get("method") for r in repos}
    if repos and all(r.get("split", {}).get("cutoff") for r in repos):
        return ("Training samples come from the repository as it was at the cut-off commit; held-out samples "
                "complete lines written after it, so nothing written after the cut-off was trained on.")
    if methods == {"file-hash"}:
        # no git history names the files: a seeded share of whole files is held out instead
        return ("Held-out samples come from a seeded share of whole files (no commit history to split by); "
                "those files never appear in a training prompt.")
    if "file-hash" in methods:
        return ("Held-out samples come from whole files: those changed in the most recent commits, or a seeded "
                "share where no history names the files; those files never appear in a training prompt.")
    return ("Held-out samples come from whole files changed in the most recent commits; those files never appear "
            "in a training prompt.")


def _fmt(value, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if kind == "share" else f"{value:.4f}"


def _before_after(metrics: dict, key: str, kind: str) -> str:
    before, after = metrics.get("before", {}).get(key), metrics.get("after", {}).get(key)
    text = f"{_fmt(before, kind)} → {_fmt(after, kind)}"
    if before is not None and after is not None:
        text += f" ({after - before:+.1%})" if kind == "share" else f" ({after - before:+.4f})"
    return text


def _model_argument(base: dict) -> str:
    """How ``--model`` names the base: its catalogue name or ``default``, else its folder."""
    spec = str(base.get("spec") or "")
    return spec if spec and not Path(spec).exists() else str(base.get("path") or spec)


def render(metadata: dict, out_dir: Path, command: str | None) -> str:
    """The card's Markdown for the adapter in ``out_dir`` described by ``metadata``."""
    base, metrics, config = metadata["base_model"], metadata["metrics"], metadata["config"]
    manifest = metadata.get("data_manifest") or {}
    counts = manifest.get("counts", {})
    name = metadata["name"]
    improved = metadata.get("improved")
    status = {True: "yes: the held-out loss after training is below the base model's",
              False: "**NO — not improved**: the published weights do not beat the base model on the held-out "
                     "samples; do not serve this adapter expecting a gain",
              None: "not measured (evaluation was off)"}[improved]
    if metadata.get("lora_b_all_zero"):
        status += "; every LoRA B matrix is zero, so the adapter changes nothing (an untrained adapter)"
    method = metadata["method"]
    if method in ("lora", "qlora"):
        method += (f", r={config['lora_r']}, alpha={config['lora_alpha']}, dropout={config['lora_dropout']}, "
                   f"targets {', '.join(metadata.get('target_modules') or [])}")
    repos = manifest.get("repos", [])
    data_lines = []
    for repo in repos:
        files, split = repo.get("files", {}), repo.get("split", {})
        commit = repo.get("commit")
        cut = f", cut-off `{split['cutoff'][:12]}`, {split.get('heldout_lines', 0)} lines after it" \
            if split.get("cutoff") else ""
        data_lines.append(f"- `{repo.get('name')}`" + (f" at commit `{commit[:12]}`" if commit else "")
                          + f": {len(files.get('train', []))} training files, {len(files.get('heldout', []))} "
                            f"held-out files (split: {split.get('method', '?')}{cut})")
    model_arg = _model_argument(base)
    names = [f"`{r.get('name')}`" for r in repos]
    lines = [
        f"# {name}: a repository adapter for {base.get('spec')}",
        "",
        f"Trained by `repocomplete finetune` on {', '.join(names) or 'a repository'} with fill-in-the-middle "
        "samples whose repository context comes from the serving retrieval.",
        "",
        "| | |",
        "|---|---|",
        f"| Base model | `{base.get('spec')}` ({base.get('model_type')}, {base.get('parameters') or 0:,} parameters) |",
        f"| Base model sha256 (weights folder) | `{base.get('hash')}` |",
        *([f"| Base model source sha256 (GGUF) | `{base['source_sha256']}` |"] if base.get("source_sha256") else []),
        f"| Method | {method} |",
        f"| FIM template | {metadata.get('template')} |",
        f"| Samples | {counts.get('train', {}).get('total', 0)} training, {counts.get('heldout', {}).get('total', 0)} held-out |",
        f"| Steps | {metrics.get('steps')} (best held-out loss at step {metrics.get('best_step')}"
        f"{', stopped early' if metrics.get('stopped_early') else ''}), {metrics.get('train_tokens', 0):,} tokens, "
        f"{metrics.get('tokens_per_s', 0):,.0f} tokens/s |",
        f"| Peak memory | {_peak_memory(metrics)} |",
        f"| Held-out loss (middle tokens) | {_before_after(metrics, 'heldout_loss', 'loss')} |",
        f"| Held-out next-line exact match | {_before_after(metrics, 'heldout_next_line_em', 'share')} |",
        f"| Improved on the base | {status} |",
        f"| Created | {metadata.get('created_at')} |",
        "",
        "## Data",
        "",
        *(data_lines or ["- (no manifest)"]),
        "",
        _split_sentence(repos),
        "",
        "## Serve it",
        "",
        "It fits only the base model above: its sha256 (in `repocomplete-adapter.json`) is checked when the "
        "adapter is loaded, and another base is refused.",
        "",
        "```sh",
        f"repocomplete serve --model {shlex.quote(model_arg)} --adapter {shlex.quote(f'{name}={out_dir}')}",
        f"repocomplete complete FILE --line L --col C --model {shlex.quote(model_arg)} "
        f"--adapter {shlex.quote(f'{name}={out_dir}')}",
        "```",
        "",
        "Requests choose it with `\"adapter\": \"" + name + "\"`.",
    ]
    if command:
        lines += ["", "## Reproduce", "", "```sh", command, "```"]
    lines += ["", "Full metadata: `repocomplete-adapter.json`; per-step losses: `metrics.json`.", ""]
    return "\n".join(lines)


def write(path: Path, metadata: dict, out_dir: Path, command: str | None) -> None:
    """Write the card to ``path`` (inside the staging folder; published with the adapter)."""
    path.write_text(render(metadata, out_dir, command), encoding="utf-8")


def _peak_memory(metrics: dict) -> str:
    """The training process's peak memory: GPU memory where it trained on CUDA, resident RAM always."""
    parts = []
    if metrics.get("peak_gpu_memory_bytes"):
        parts.append(f"{metrics['peak_gpu_memory_bytes'] / 2**30:.2f} GiB GPU")
    if metrics.get("peak_rss_bytes"):
        parts.append(f"{metrics['peak_rss_bytes'] / 2**30:.2f} GiB RAM (peak RSS)")
    return ", ".join(parts) or "not recorded"
