"""``repocomplete run [DIR]``: the README's one command for a newcomer.

Choose a model (the best real code model installed or pullable for this machine, else
the embedded default), index DIR with a progress bar, serve it, then print the URL, a
curl example, one real completion fetched from the running server, and how to connect
VS Code and Neovim; serve until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from repocomplete.backends import backend_entry, backend_names
from repocomplete.errors import ConfigError, RepocompleteError

#: The README's curl example (README.md shows it with its answer; tests/server/test_newcomer.py checks both):
#: one the embedded default model completes right on this repository ("main())"), even though
#: retrieval also finds this very text in the repository's docs and code.
CURL_EXAMPLE = {"language": "python", "segments": {"prefix": 'if __name__ == "__main__":\n    sys.exit(', "suffix": "\n"}}

#: Files tried for the sample completion, most familiar first.
SAMPLE_SUFFIXES = (".py", ".ts", ".js", ".go", ".rs", ".java", ".c", ".cpp", ".rb", ".R", ".rkt", ".lua", ".sh")
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist", ".tox"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="repocomplete run",
        description="Index a repository, serve it on the best code model this machine has or can pull "
                    "(else the embedded default model), and show how to connect an editor.",
    )
    p.add_argument("dir", nargs="?", default=".", help="repository to index and serve (default: .)")
    p.add_argument("--model", help="a catalogue name (pulled if needed; see `repocomplete models list`), a .gguf file, "
                                   "a model directory, or 'default' (the embedded model, no download). Default: "
                                   "$REPOCOMPLETE_MODEL, else the config file's, else the best catalogue model "
                                   "installed or pullable for this machine, else the embedded model")
    p.add_argument("--backend", choices=backend_names(), help="model runner (default: transformers)")
    p.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8765; the next free one if taken)")
    p.add_argument("--config", metavar="FILE", help="TOML config with [server] and [engine] sections")
    return p


def run(argv: Sequence[str] | None = None) -> int:
    from server.settings import load_settings

    args = parser().parse_args(argv)
    root = Path(args.dir).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"not a directory: {args.dir}")
    model, tiny = _resolve(_explicit_model(args), args.backend)
    settings = load_settings(args.config, {"host": args.host, "log_level": "warning"},
                             {"model": model, "backend": args.backend})
    settings.port = free_port(settings.host, args.port or settings.port)
    warning = settings.check_exposure()  # beyond loopback without a token: refused, or said loudly
    if warning:
        print(warning, flush=True)
    from server.app import build_engine

    print(f"Loading model: {model}")
    engine = build_engine(settings)
    if tiny:
        print("NOTE: this is a tiny untrained stand-in model (no trained default model is embedded in this build):\n"
              "      completions show the plumbing works, not real suggestions. "
              "`--model qwen2.5-coder-0.5b` serves a real code model.")
    _index(engine, root)
    server, thread = _start(settings, engine)
    try:
        _print_howto(settings, root, engine)
        print("Serving until Ctrl-C.", flush=True)
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        print("\nStopping.")
    finally:
        server.should_exit = True
        thread.join(10)
    return 0


def _explicit_model(args) -> str | None:
    """The model the user named: --model, $REPOCOMPLETE_MODEL, or the config file's; None = choose one."""
    if args.model:
        return args.model
    if os.environ.get("REPOCOMPLETE_MODEL"):
        return os.environ["REPOCOMPLETE_MODEL"]
    if args.config:
        import tomllib

        try:
            data = tomllib.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            return None  # load_settings reports the problem in its own words
        for section in ("server", "engine"):
            model = data.get(section, {}).get("model") if isinstance(data.get(section), dict) else None
            if isinstance(model, str) and model:
                return model
    return None


def _resolve(spec: str | None, backend: str | None) -> tuple[str, bool]:
    """The model spec to serve and whether it is the tiny untrained stand-in.

    A named catalogue model is pulled (with progress) when missing; with no name, the best
    catalogue model for this machine is used, pulled if needed, and the embedded default
    model when none can be had (one line says which and why).
    """
    if not backend_entry(backend or "transformers").local_model:
        return spec or "default", False
    from repocomplete.errors import ModelUnavailableError
    from repocomplete.model_store import ConsoleProgress
    from repocomplete.model_resolution import resolve_model

    progress = ConsoleProgress()
    chosen = spec is None
    if chosen:
        spec = _choose_model(progress)
    try:
        resolved = resolve_model(spec, pull=True, progress=progress)
    except ModelUnavailableError as exc:
        if not chosen:
            raise
        print(f"No real code model could be had ({exc}): serving the embedded default model instead.", flush=True)
        spec, resolved = "default", resolve_model("default")
    # the engine resolves the name again (now installed and prepared: a stat), keeping its label
    return (spec if resolved.name else str(resolved.path)), bool(resolved.is_tiny)


def _choose_model(progress) -> str:
    """A catalogue model installed (or pulled now) for this machine, else "default"."""
    from repocomplete import model_store
    from repocomplete.catalog import catalog, choose_interactive
    from repocomplete.errors import ModelUnavailableError

    entries = [e for e in catalog().values() if e.quality > 0]
    if not entries:
        return "default"
    installed = {e.name for e in entries if model_store.state(e).status in ("installed", "unverified")}
    entry, why = choose_interactive(entries, installed, cores=_cpu_cores(), gpu=_has_gpu())
    print(f"Model: {why}. (--model NAME to choose another, --model default for the embedded model)", flush=True)
    try:
        if entry.name not in installed:
            model_store.pull(entry, progress=progress)
        return entry.name
    except ModelUnavailableError:
        print(f"No real code model could be had (offline?): serving the embedded default model instead; "
              f"`repocomplete models pull {entry.name}` fetches it later.", flush=True)
        return "default"


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _has_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def free_port(host: str, preferred: int) -> int:
    """``preferred`` if it can be bound, else the next free port above it."""
    for port in range(preferred, preferred + 100):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            try:
                s.bind((host, port))
                return port
            except OSError:
                continue
    raise ConfigError(f"no free port in {preferred}..{preferred + 99} on {host}")


def _index(engine, root: Path):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("Indexing {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False) as progress:
        task = progress.add_task(root.name, total=None)

        def update(job) -> None:
            progress.update(task, completed=job.files_done, total=job.files_total or None)

        job = engine.indexing.start(str(root), on_progress=update)
        engine.indexing.wait(timeout_s=float("inf"))
    if job.status != "ready":
        raise RepocompleteError(f"indexing {root} failed: {job.error}")
    summary = job.summary
    files = summary["files_indexed"] + summary["files_unchanged"]
    print(f"Indexed {files} files ({summary['symbols']} symbols, {summary['chunks']} chunks) in {summary['elapsed_s']:.1f} s")


def _start(settings, engine):
    import uvicorn

    from server.app import create_app
    from server.connections import uvicorn_options

    config = uvicorn.Config(create_app(settings, engine=engine), host=settings.host, port=settings.port,
                            log_level=settings.log_level, timeout_graceful_shutdown=2, **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RepocompleteError(f"the server could not start on {settings.url}")
        time.sleep(0.05)
    return server, thread


def sample_point(root: Path) -> tuple[str, str, str, str] | None:
    """(relative path, language, prefix, suffix): a cursor mid-line in the first sizeable source file."""
    from indexer.languages import language_for_path

    for suffix in SAMPLE_SUFFIXES:
        for path in sorted(root.rglob(f"*{suffix}")):
            if SKIP_DIRS & set(path.relative_to(root).parts) or not path.is_file():
                continue
            try:
                lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            except (OSError, UnicodeDecodeError):
                continue
            candidates = [i for i, line in enumerate(lines) if i >= 3 and _is_code_line(line, lines[:i])]
            if not candidates:
                continue
            i = candidates[len(candidates) // 2]
            cut = len(lines[i]) - len(lines[i].lstrip()) + len(lines[i].strip()) // 2
            prefix = "".join(lines[:i]) + lines[i][:cut]
            rest = lines[i][cut:] + "".join(lines[i + 1:])
            rel = str(path.relative_to(root))
            return rel, language_for_path(rel) or "", prefix, rest
    return None


def _is_code_line(line: str, before: list[str]) -> bool:
    """A statement worth completing: long enough, not a comment, not inside a docstring."""
    text = line.strip()
    if len(text) < 20 or text.startswith(("#", "//", '"', "'", "*", "/*")) or not any(c in text for c in "=("):
        return False
    return sum(b.count('"""') + b.count("'''") for b in before) % 2 == 0


def curl_command(url: str) -> str:
    """The curl command of :data:`CURL_EXAMPLE` against ``url``, as printed (two lines)."""
    return (f"  curl -s {url}/v1/completions -H 'Content-Type: application/json' \\\n"
            f"    -d {shlex.quote(json.dumps(CURL_EXAMPLE))}")


def _answer(url: str, body: dict) -> str:
    """The completion text the running server gives for ``body`` (or why there is none)."""
    import httpx

    try:
        reply = httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()
        return reply["choices"][0]["text"] if "choices" in reply else f"(error: {reply['error']['message']})"
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        return f"(no sample: {exc})"


def _print_howto(settings, root: Path, engine) -> None:
    url = settings.url
    print(f"\nrepocomplete is serving {root} at {url}  (model: {engine.summary()})\n")
    print("Try it:")
    print(curl_command(url))
    print(f"  answers: {_answer(url, CURL_EXAMPLE)!r}\n")
    point = sample_point(root)
    if point is not None:
        rel, language, prefix, suffix = point
        text = _answer(url, {"language": language, "segments": {"prefix": prefix, "suffix": suffix, "filepath": rel}})
        line = prefix.rsplit("\n", 1)[-1]
        print(f"Sample completion from the server at {rel}:{prefix.count(chr(10)) + 1}:")
        print(f"  {line}\u2588{text!r}\n")
    print(editor_setup(url, python_executable()))


#: Oldest Neovim the printed set-up runs on (``vim.lsp.config``/``vim.lsp.enable`` are 0.11 API).
MIN_NEOVIM = "0.11"
#: Oldest VS Code the extension declares (``engines.vscode`` in extension/package.json).
MIN_VSCODE = "1.85"


def python_executable() -> str:
    """This interpreter as an absolute path a user can paste anywhere (the venv's, not resolved)."""
    return os.path.abspath(sys.executable)


def vscode_settings(url: str, python: str) -> dict[str, str]:
    """The settings.json entries that point the extension at this interpreter and this server."""
    return {"repocomplete.pythonPath": python, "repocomplete.serverUrl": url}


def neovim_config(url: str, python: str) -> str:
    """Lua for init.lua (Neovim >= MIN_NEOVIM, no plugin needed): the language server of this venv, on this server."""
    return NEOVIM_SNIPPET.replace("{python}", _lua_string(python)).replace("{url}", _lua_string(url))


def editor_setup(url: str, python: str) -> str:
    """How to connect VS Code and Neovim, with absolute paths that work from any directory."""
    vsix_dir = Path(__file__).resolve().parent.parent / "extension"
    vsix = sorted(vsix_dir.glob("*.vsix"))
    vsix_hint = str(vsix[-1]) if vsix else f"{vsix_dir}/repocomplete-*.vsix (build it first: make extension; needs Node 18+)"
    settings = json.dumps(vscode_settings(url, python), indent=2)
    lines = [f"VS Code {MIN_VSCODE}+:",
             f"  code --install-extension {vsix_hint}",
             "  then add to your user settings.json (pythonPath, serverUrl, token: user settings only):",
             *("    " + line for line in settings.splitlines()),
             "",
             f"Neovim {MIN_NEOVIM}+ (older ones lack vim.lsp.config; check with nvim --version), add to init.lua:",
             *("    " + line for line in neovim_config(url, python).splitlines()),
             ""]
    return "\n".join(lines)


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


NEOVIM_SNIPPET = """\
vim.lsp.config("repocomplete", {
  cmd = { {python}, "-m", "repocomplete", "lsp" },
  root_markers = { ".git" },
  init_options = { serverUrl = {url} },
})
vim.lsp.enable("repocomplete")
-- Neovim 0.11 shows the completion in the popup menu as you type (0.12+ can also show ghost
-- text: vim.lsp.inline_completion.enable(), see docs/editors.md)
vim.api.nvim_create_autocmd("LspAttach", { callback = function(args)
  local client = vim.lsp.get_client_by_id(args.data.client_id)
  if client and client.name == "repocomplete" then
    vim.lsp.completion.enable(true, client.id, args.buf, { autotrigger = true })
  end
end })
"""
