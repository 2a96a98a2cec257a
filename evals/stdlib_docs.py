"""A documentation corpus built from the Python standard library's docstrings (CodeRAG-Bench's
"library documentation" source, offline), and the gold documents of a HumanEval solution.

Each document is one function, class or method: ``math.gcd``, ``str.join``, ``builtins.sorted``.
The corpus is written as one small Python stub per document (signature + docstring) so the
project's own indexer can index and retrieve it like any repository; a retrieved snippet's file
names its document.

Gold documents of a problem: what its canonical solution calls, resolved statically
(``math.sqrt(x)`` -> ``math.sqrt``; ``sorted(x)`` -> ``builtins.sorted``; ``s.join(x)`` ->
every ``<type>.join`` of the built-in types). A few calls nearly every solution makes
(``len``, ``range``, ``append``...) are left out: they would make retrieval look good for
nothing.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
from pathlib import Path

#: Modules whose public functions and classes become documents.
MODULES = ("math", "string", "itertools", "functools", "collections", "re", "heapq", "bisect",
           "statistics", "operator", "fractions", "hashlib", "datetime")
#: Built-in types whose public methods become documents (``str.join``...).
BUILTIN_TYPES = ("str", "list", "dict", "set", "tuple", "int", "float")
#: Calls too common to count as needing documentation.
UBIQUITOUS = frozenset({"len", "range", "enumerate", "print", "int", "str", "float", "list", "dict", "set",
                        "tuple", "bool", "isinstance", "append", "type", "super"})


def _document(qualname: str, obj: object) -> str | None:
    doc = inspect.getdoc(obj)
    if not doc:
        return None
    try:
        signature = str(inspect.signature(obj))
    except (TypeError, ValueError):
        signature = "(...)"
    name = qualname.rsplit(".", 1)[-1]
    body = doc.replace('"""', "'''")
    return f"# {qualname}\ndef {name}{signature}:\n    \"\"\"{body}\n    \"\"\"\n"


def build_corpus() -> dict[str, str]:
    """Document id (``module.name``) -> document text."""
    corpus: dict[str, str] = {}
    for name in dir(builtins):
        obj = getattr(builtins, name)
        if not name.startswith("_") and callable(obj) and not (isinstance(obj, type) and issubclass(obj, BaseException)):
            if (text := _document(f"builtins.{name}", obj)) is not None:
                corpus[f"builtins.{name}"] = text
    for type_name in BUILTIN_TYPES:
        cls = getattr(builtins, type_name)
        for name in dir(cls):
            if not name.startswith("_") and (text := _document(f"{type_name}.{name}", getattr(cls, name))) is not None:
                corpus[f"{type_name}.{name}"] = text
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        public = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
        for name in public:
            obj = getattr(module, name, None)
            if callable(obj) and (text := _document(f"{module_name}.{name}", obj)) is not None:
                corpus[f"{module_name}.{name}"] = text
    return corpus


def doc_path(doc_id: str) -> str:
    """The stub file of a document, relative to the corpus root."""
    module, _, name = doc_id.rpartition(".")
    return f"{module}/{name}.py"


def doc_id_of(path: str) -> str:
    """Inverse of :func:`doc_path`."""
    module, _, file = path.rpartition("/")
    return f"{module}.{file.removesuffix('.py')}"


def write_corpus(folder: Path) -> dict[str, str]:
    """Write the corpus as stubs under ``folder`` (skipping unchanged files); return it."""
    corpus = build_corpus()
    for doc_id, text in corpus.items():
        path = folder / doc_path(doc_id)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return corpus


def gold_documents(solution: str, corpus: dict[str, str]) -> set[str]:
    """Documents of what ``solution`` (prompt + canonical solution) calls, as far as static analysis tells."""
    try:
        tree = ast.parse(solution)
    except SyntaxError:
        return set()
    modules = {alias.asname or alias.name: alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    imported = {alias.asname or alias.name: f"{node.module}.{alias.name}" for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}
    gold: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id not in UBIQUITOUS:
            gold.add(imported.get(func.id, f"builtins.{func.id}"))
        elif isinstance(func, ast.Attribute) and func.attr not in UBIQUITOUS:
            if isinstance(func.value, ast.Name) and func.value.id in modules:
                gold.add(f"{modules[func.value.id]}.{func.attr}")
            else:
                gold.update(f"{t}.{func.attr}" for t in BUILTIN_TYPES)
    return gold & set(corpus)
