"""``repocomplete complete FILE --line L --col C``: one completion at a position, from the shell.

Positions are 1-based (line and column in characters), as editors and compilers print
them. Every user mistake is a one-line ``error: ...`` and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from repocomplete.config import EngineConfig, add_config_flags, flag_overrides, load_engine_config, parse_adapter, parse_adapters
from repocomplete.errors import InvalidRequestError
from repocomplete.types import CompletionRequest, DebugOptions, Segments

#: Engine flags, generated from EngineConfig's fields (help and default stated there).
ENGINE_FLAGS = {"model": "--model", "backend": "--backend", "template": "--template", "openai_url": "--openai-url",
                "device": "--device"}
#: Bytes read to decide whether a file is binary.
_SNIFF_BYTES = 8192


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repocomplete complete",
        description="Complete code at a position in FILE (line and column are 1-based). "
        "Prints the completion; --json prints text, timings and (with --show-prompt) the prompt.",
    )
    parser.add_argument("file", metavar="FILE", help="the source file to complete in")
    parser.add_argument("--line", type=int, required=True, help="1-based line of the cursor")
    parser.add_argument("--col", type=int, required=True, help="1-based column of the cursor (characters; line length + 1 = end of line)")
    add_config_flags(parser, EngineConfig, ENGINE_FLAGS)
    parser.add_argument("--adapter", help="LoRA adapter directory (or NAME=DIR)")
    parser.add_argument("--workspace", metavar="DIR",
                        help="repository to index (incrementally) and retrieve context from (default: FILE's git repository)")
    parser.add_argument("--no-workspace", action="store_true", help="no repository context, only FILE itself")
    parser.add_argument("--max-tokens", type=int, default=64, help="most tokens to generate (default 64)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--mode", choices=("auto", "line", "multiline"), default="auto", help="how much to complete")
    parser.add_argument("--config", metavar="TOML", help="config file; its [engine] table sets EngineConfig keys")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--show-prompt", action="store_true", help="also print the exact prompt sent to the model")
    return parser


def read_position(path: Path, line: int, col: int) -> tuple[str, str]:
    """(prefix, suffix) of ``path`` split at the 1-based ``line``:``col``; InvalidRequestError if impossible."""
    if not path.is_file():
        raise InvalidRequestError(f"no such file: {path}")
    data = path.read_bytes()
    if not data:
        raise InvalidRequestError(f"{path} is empty: there is nothing to complete from")
    try:
        if b"\x00" in data[:_SNIFF_BYTES]:
            raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "NUL byte")
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{path} is a binary file (not UTF-8 text)") from None
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise InvalidRequestError(f"line {line} is outside {path} (it has {len(lines)} lines)")
    current = lines[line - 1].removesuffix("\r")
    if not 1 <= col <= len(current) + 1:
        raise InvalidRequestError(f"column {col} is outside line {line} of {path} (it has {len(current)} characters)")
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
    return text[:offset], text[offset:]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    path = Path(args.file).expanduser()
    prefix, suffix = read_position(path, args.line, args.col)

    adapter, adapters = (None, {}) if not args.adapter else (parse_adapter(args.adapter)[0], parse_adapters([args.adapter]))
    config = load_engine_config(args.config, **flag_overrides(args, ENGINE_FLAGS))
    config.adapters = {**config.adapters, **adapters}

    from indexer.workspace import git_root
    from repocomplete.engine import Engine

    workspace_dir = None if args.no_workspace else args.workspace or git_root(path)
    # Loading a real model takes 20-45 s on a laptop CPU: say what is happening (stderr: stdout is the answer).
    print(f"loading model {config.model or 'default'} ...", file=sys.stderr, flush=True)
    engine = Engine.from_config(config)
    filepath = path.name
    if workspace_dir:
        workspace = engine.workspaces.register(str(workspace_dir))
        if not args.json:
            rows = {row["name"]: row for row in engine.workspaces.list()}
            print(f"indexed {workspace.root}: {rows[engine.workspaces.name_of(workspace)]['files']} files", file=sys.stderr)
        root = Path(workspace.root).resolve()
        resolved = path.resolve()
        filepath = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
    request = CompletionRequest(
        segments=Segments(prefix=prefix, suffix=suffix, filepath=filepath),
        workspace=engine.workspaces.name_of(workspace) if workspace_dir else None,
        adapter=adapter, max_tokens=args.max_tokens, temperature=args.temperature, mode=args.mode,
        debug_options=DebugOptions(return_prompt=args.show_prompt, return_snippets=args.json),
    )
    result = engine.complete(request)
    label = engine.model_label
    if args.json:
        payload = {
            "id": result.id, "text": result.choices[0].text, "choices": [asdict(c) for c in result.choices],
            "model": result.model, "model_label": label, "template": engine.template.name,
            "timings": asdict(result.timings), "usage": asdict(result.usage),
            "snippets": [asdict(s) for s in result.snippets or []],
        }
        if args.show_prompt:
            payload["prompt"] = result.prompt
        print(json.dumps(payload, indent=2))
        return 0
    if "tiny untrained" in label:
        print(f"note: using a {label}; completions are random", file=sys.stderr)
    if args.show_prompt:
        print(f"--- prompt ({result.usage.prompt_tokens} tokens, template {engine.template.name}) ---")
        print(result.prompt)
        print("--- completion ---")
    print(result.choices[0].text)
    return 0
