"""The import direction of DESIGN.md, enforced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower() or "0 broken" in result.stdout.lower()


def _strongly_connected_components(graph) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative (the graph has hundreds of modules); components of 2+ modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_strongly_connected_components_finds_a_cycle_and_ignores_a_chain():
    class Graph:
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
        modules = set(edges)

        def find_modules_directly_imported_by(self, module):
            return self.edges[module]

    assert _strongly_connected_components(Graph()) == [frozenset({"a", "b", "c"})]


def test_no_import_cycles_lazy_imports_included():
    """Every import statement counts, those inside functions too (grimp reads them all)."""
    import grimp

    graph = grimp.build_graph("repocomplete", "indexer", "server", "lsp", "training", "evals", cache_dir=None)
    cycles = [sorted(c) for c in _strongly_connected_components(graph)]
    assert not cycles, f"import cycles: {cycles}"


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


HEAVY = {"torch", "transformers", "peft", "bitsandbytes", "accelerate"}


def test_cli_help_and_indexer_do_not_import_torch():
    loaded = _modules_loaded_by("import repocomplete.cli, repocomplete.commands.models, indexer, indexer.types")
    assert not (HEAVY & loaded), HEAVY & loaded


def test_cli_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "repocomplete", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("complete", "models", "index", "context", "serve", "lsp", "finetune", "pretrain", "eval"):
        assert command in out.stdout


def test_unknown_command_is_a_one_line_error():
    out = subprocess.run([sys.executable, "-m", "repocomplete", "frobnicate"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown command" in out.stderr and "Traceback" not in out.stderr


def test_no_benchmark_script_shadows_a_project_package():
    """`python bench/X.py` puts bench/ first on sys.path: a bench/indexer.py made every
    `import indexer` of such a run (the engine's included) load the benchmark instead."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {"indexer", "repocomplete", "training", "evals"} <= packages
    scripts = {p.stem for p in (ROOT / "bench").glob("*.py")}
    assert not scripts & packages, sorted(scripts & packages)
