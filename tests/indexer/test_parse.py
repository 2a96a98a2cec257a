"""Golden tests: one small realistic file per language (tests/indexer/fixtures/)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from indexer.languages import LANGUAGES, language_for_path
from indexer.parse import parse_source

FIXTURES = Path(__file__).parent / "fixtures"

# file -> (definitions as (name, kind, parent, start, end), imports as (module, names, alias),
#          parents as (class, parent))
GOLDEN = {
    "shapes.py": (
        [("UNIT", "variable", None, 6, 6), ("Circle", "class", None, 9, 16),
         ("kind", "field", "Circle", 10, 10), ("__init__", "method", "Circle", 12, 13),
         ("radius", "field", "Circle", 13, 13), ("area", "method", "Circle", 15, 16),
         ("square", "function", None, 19, 20)],
        [("math", [], None), ("collections", ["OrderedDict"], "OD"),
         (".base", ["Shape", "Named"], None)],
        [("Circle", "Shape"), ("Circle", "Named")],
    ),
    "shapes.js": (
        [("Circle", "class", None, 5, 16), ("radius", "field", "Circle", 6, 6),
         ("constructor", "method", "Circle", 8, 11), ("area", "method", "Circle", 13, 15),
         ("describe", "function", None, 18, 20), ("helper", "function", None, 22, 22)],
        [("./shape.js", ["Shape"], None), ("./shape.js", ["area"], "computeArea"),
         ("lib", [], "Default"), ("fs", [], None)],
        [("Circle", "Shape")],
    ),
    "shapes.ts": (
        [("Named", "interface", None, 4, 6), ("name", "field", "Named", 5, 5),
         ("Circle", "class", None, 8, 20), ("radius", "field", "Circle", 9, 9),
         ("name", "field", "Circle", 10, 10), ("constructor", "method", "Circle", 12, 15),
         ("area", "method", "Circle", 17, 19), ("center", "function", None, 22, 24),
         ("Radius", "type", None, 26, 26), ("Color", "enum", None, 27, 27)],
        [("./geometry", ["Shape", "Point"], None), ("./util", [], "util")],
        [("Circle", "Shape"), ("Circle", "Named"), ("Circle", "Comparable")],
    ),
    "widget.tsx": (
        [("Props", "interface", None, 4, 6), ("label", "field", "Props", 5, 5),
         ("Panel", "class", None, 8, 12), ("render", "method", "Panel", 9, 11),
         ("Counter", "function", None, 14, 17)],
        [("react", ["useState"], None), ("react", [], "React"), ("./button", ["Button"], None)],
        [("Panel", "React.Component")],
    ),
    "Circle.java": (
        [("Circle", "class", None, 6, 22), ("radius", "field", "Circle", 7, 7),
         ("name", "field", "Circle", 8, 8), ("Circle", "method", "Circle", 10, 12),
         ("area", "method", "Circle", 14, 17), ("compareTo", "method", "Circle", 19, 21),
         ("Named", "interface", None, 24, 26), ("name", "method", "Named", 25, 25)],
        [("java.util", ["List"], None), ("java.lang.Math", ["PI"], None)],
        [("Circle", "Shape"), ("Circle", "Comparable"), ("Circle", "Named"), ("Named", "Base")],
    ),
    "shapes.go": (
        [("Shape", "interface", None, 10, 12), ("Area", "method", "Shape", 11, 11),
         ("Circle", "struct", None, 14, 17), ("Radius", "field", "Circle", 15, 15),
         ("Name", "field", "Circle", 16, 16), ("Area", "method", "Circle", 19, 21),
         ("Describe", "function", None, 23, 25), ("Ring", "struct", None, 27, 30),
         ("Inner", "field", "Ring", 29, 29)],
        [("fmt", [], None), ("math", [], "m"), ("strings", [], None)],
        [("Ring", "Circle")],
    ),
    "shapes.rs": (
        [("Shape", "trait", None, 4, 6), ("area", "method", "Shape", 5, 5),
         ("Circle", "struct", None, 9, 12), ("radius", "field", "Circle", 10, 10),
         ("name", "field", "Circle", 11, 11), ("Circle", "impl", None, 14, 18),
         ("area", "method", "Circle", 15, 17), ("Circle", "impl", None, 20, 24),
         ("new", "method", "Circle", 21, 23), ("total", "function", None, 26, 29),
         ("Kind", "enum", None, 31, 31), ("tests", "module", None, 32, 32)],
        [("std::collections", ["HashMap"], None), ("crate::geometry", ["Point"], None),
         ("crate::geometry", ["Vector"], "Vec2")],
        [("Shape", "Debug"), ("Shape", "Clone"), ("Circle", "Shape")],
    ),
    "shapes.c": (
        [("PI", "macro", None, 4, 4), ("circle", "struct", None, 6, 9),
         ("radius", "field", "circle", 7, 7), ("name", "field", "circle", 8, 8),
         ("circle_t", "type", None, 11, 11), ("square", "function", None, 13, 15),
         ("circle_area", "function", None, 17, 19), ("main", "function", None, 21, 25)],
        [("stdio.h", [], None), ("shapes.h", [], None)],
        [],
    ),
    "shapes.cpp": (
        [("geo", "namespace", None, 5, 26), ("Circle", "class", "geo", 7, 15),
         ("Circle", "method", "Circle", 9, 9), ("area", "method", "Circle", 10, 10),
         ("name", "method", "Circle", 11, 11), ("radius_", "field", "Circle", 14, 14),
         ("area", "method", "Circle", 17, 19), ("Point", "struct", "geo", 21, 24),
         ("x", "field", "Point", 22, 22), ("y", "field", "Point", 23, 23),
         ("main", "function", None, 28, 31)],
        [("cmath", [], None), ("string", [], None), ("shape.hpp", [], None)],
        [("Circle", "Shape"), ("Circle", "Named")],
    ),
    "Circle.cs": (
        [("Example.Shapes", "namespace", None, 5, 27), ("INamed", "interface", "Example.Shapes", 7, 10),
         ("Name", "field", "INamed", 9, 9), ("Circle", "class", "Example.Shapes", 12, 26),
         ("radius", "field", "Circle", 14, 14), ("Name", "field", "Circle", 15, 15),
         ("Circle", "method", "Circle", 17, 20), ("Area", "method", "Circle", 22, 25)],
        [("System", [], None), ("System.Collections.Generic", [], None),
         ("Example.Geometry", [], "Geo")],
        [("Circle", "Shape"), ("Circle", "INamed")],
    ),
    "shapes.rb": (
        [("Geometry", "module", None, 4, 21), ("Circle", "class", "Geometry", 5, 20),
         ("radius", "field", "Circle", 7, 7), ("initialize", "method", "Circle", 9, 11),
         ("area", "method", "Circle", 13, 15), ("unit", "method", "Circle", 17, 19)],
        [("json", [], None), ("shape", [], None)],
        [("Circle", "Shape"), ("Circle", "Comparable")],
    ),
    "Circle.php": (
        [("Circle", "class", None, 8, 22), ("radius", "field", "Circle", 10, 10),
         ("name", "field", "Circle", 11, 11), ("__construct", "method", "Circle", 13, 16),
         ("area", "method", "Circle", 18, 21), ("Drawable", "interface", None, 24, 26),
         ("draw", "method", "Drawable", 25, 25), ("describe", "function", None, 28, 30)],
        [("App\\Geometry", ["Shape"], None), ("App\\Contracts", ["Named"], "NamedContract"),
         ("/helpers.php", [], None)],
        [("Circle", "Shape"), ("Circle", "NamedContract"), ("Circle", "\\Countable")],
    ),
    "Circle.kt": (
        [("Named", "interface", None, 6, 8), ("name", "field", "Named", 7, 7),
         ("Circle", "class", None, 10, 21), ("radius", "field", "Circle", 10, 10),
         ("name", "field", "Circle", 11, 11), ("cache", "field", "Circle", 12, 12),
         ("area", "method", "Circle", 14, 16), ("unit", "method", "Circle", 19, 19),
         ("Registry", "object", None, 23, 25), ("register", "method", "Registry", 24, 24),
         ("square", "function", None, 27, 27)],
        [("kotlin.math", ["PI"], None), ("com.example.geometry", ["Point"], "P")],
        [("Circle", "Shape"), ("Circle", "Named")],
    ),
    "shapes.R": (
        [("circle_area", "function", None, 5, 7), ("square", "function", None, 9, 9),
         ("Circle", "class", None, 11, 19), ("radius", "field", "Circle", 13, 13),
         ("area", "method", "Circle", 15, 17), ("Square", "class", None, 21, 21),
         ("summary_of", "function", None, 22, 22)],
        [("stats", [], None), ("utils", [], None), ("helpers.R", [], None)],
        [("Circle", "Shape"), ("Square", "Shape")],
    ),
    "shapes.rkt": (
        [("pi-ish", "variable", None, 8, 8), ("circle-area", "function", None, 10, 11),
         ("square", "function", None, 13, 14), ("circle%", "class", None, 16, 21),
         ("radius", "field", "circle%", 19, 19), ("area", "method", "circle%", 20, 21)],
        [("racket/math", [], None), ("geometry.rkt", [], None), ("racket/list", ["first"], None)],
        [("circle%", "shape%")],
    ),
}

# A call each fixture makes, found among the references (name, line).
CALLS = {
    "shapes.py": ("square", 16), "shapes.js": ("computeArea", 14), "shapes.ts": ("square", 18),
    "widget.tsx": ("useState", 15), "Circle.java": ("pow", 16), "shapes.go": ("Sprintf", 24),
    "shapes.rs": ("powi", 16), "shapes.c": ("square", 18), "shapes.cpp": ("pow", 18),
    "Circle.cs": ("Pow", 24), "shapes.rb": ("square", 14), "Circle.php": ("pow", 20),
    "Circle.kt": ("square", 15), "shapes.R": ("square", 6), "shapes.rkt": ("square", 11),
}


@pytest.mark.parametrize(("path", "first_line", "expected"), [
    ("pkg/mod.py", None, "python"), ("types.pyi", None, "python"), ("a.mjs", None, "javascript"),
    ("a.ts", None, "typescript"), ("a.tsx", None, "tsx"), ("A.java", None, "java"),
    ("main.go", None, "go"), ("lib.rs", None, "rust"), ("x.h", None, "c"), ("x.hpp", None, "cpp"),
    ("X.cs", None, "csharp"), ("Rakefile", None, "ruby"), ("i.php", None, "php"),
    ("b.gradle.kts", None, "kotlin"), ("analysis.R", None, "r"), ("m.rkt", None, "racket"),
    ("bin/tool", "#!/usr/bin/env python3", "python"), ("bin/run", "#!/usr/bin/node", "javascript"),
    ("script", "#lang racket/base", "racket"), ("README.md", None, None), ("Makefile", None, None),
])
def test_language_for_path(path, first_line, expected):
    assert language_for_path(path, first_line) == expected


def test_every_language_has_a_fixture():
    covered = {language_for_path(name) for name in GOLDEN}
    assert covered == set(LANGUAGES)


@pytest.mark.parametrize("filename", sorted(GOLDEN))
def test_golden(filename):
    language = language_for_path(filename)
    parsed = parse_source((FIXTURES / filename).read_text(), language)
    definitions, imports, parents = GOLDEN[filename]
    assert [(d.name, d.kind, d.parent, d.start_line, d.end_line) for d in parsed.definitions] == definitions
    assert [(i.module, i.names, i.alias) for i in parsed.imports] == imports
    assert [(p.class_name, p.parent_name) for p in parsed.class_parents] == parents
    name, line = CALLS[filename]
    assert any(r.name == name and r.line == line and r.kind == "call" for r in parsed.references)
    assert not parsed.has_errors
    # Context types: every file has identifiers and strings; bodies and signatures are text.
    assert parsed.identifiers and parsed.string_literals
    for d in parsed.definitions:
        assert d.name in d.body and d.signature and d.signature in d.body.replace("\r", "")


def test_definition_text_and_context_items():
    parsed = parse_source((FIXTURES / "shapes.py").read_text(), "python")
    area = next(d for d in parsed.definitions if d.name == "area")
    assert area.signature == "def area(self) -> float:"
    assert area.body.splitlines()[-1].strip() == "return math.pi * square(self.radius)"
    assert ("float", 12) in parsed.type_identifiers
    assert ('"circle"', 10) in parsed.string_literals
    assert ("self.radius = radius", 13) in parsed.field_declarations
    assert dict(parsed.identifiers)["square"] == 16        # first use


def test_context_items_are_unique_at_their_first_line():
    parsed = parse_source((FIXTURES / "shapes.js").read_text(), "javascript")
    lines = dict(parsed.identifiers)
    assert len(lines) == len(parsed.identifiers)
    assert (lines["Shape"], lines["radius"], lines["fs"]) == (1, 6, 3)


def test_references_and_context_can_be_skipped():
    text = (FIXTURES / "shapes.py").read_text()
    full = parse_source(text, "python")
    lean = parse_source(text, "python", references=False, context=False)
    assert lean.definitions == full.definitions and lean.imports == full.imports
    assert lean.class_parents == full.class_parents
    assert lean.references == [] and lean.identifiers == [] and full.references
    only_context = parse_source(text, "python", references=False)
    assert only_context.identifiers == full.identifiers and only_context.references == []


@pytest.mark.parametrize("filename", sorted(GOLDEN))
def test_flags_do_not_change_the_tags(filename):
    # One combined query per language: switching the references / context patterns off must
    # leave definitions, imports and parents exactly as they are with everything on.
    language = language_for_path(filename)
    text = (FIXTURES / filename).read_text()
    full = parse_source(text, language)
    for flags in ({"references": False}, {"context": False}, {"references": False, "context": False}):
        lean = parse_source(text, language, **flags)
        assert (lean.definitions, lean.imports, lean.class_parents) == \
            (full.definitions, full.imports, full.class_parents)
        assert (lean.identifiers == full.identifiers) == flags.get("context", True)
        assert (lean.references == full.references) == flags.get("references", True)


def test_a_context_pattern_needs_exactly_one_tag(monkeypatch):
    from indexer import parse

    tags, _ = parse._query_sections("python")
    bad = "\n(call function: (identifier) @name.reference.call @context.identifier)\n"
    monkeypatch.setattr(parse, "_query_sections", lambda language: (tags, bad))
    with pytest.raises(ValueError, match="exactly one"):
        parse._plan.__wrapped__("python")


def test_unknown_language_and_empty_text_give_empty_results():
    assert parse_source("whatever", None).definitions == []
    assert parse_source("whatever", "cobol").language is None
    assert parse_source("", "python").definitions == []


def test_syntax_errors_are_tolerated():
    parsed = parse_source("def ok():\n    return 1\n\ndef broken(:\n    pass\n", "python")
    assert parsed.has_errors
    assert "ok" in [d.name for d in parsed.definitions]


def test_non_ascii_columns_are_characters():
    parsed = parse_source('s = "héllo"; t = f(x)\n', "python")
    call = next(r for r in parsed.references if r.name == "f")
    assert call.col == 's = "héllo"; t = f(x)'.index("f(")


def test_parse_speed_on_a_2000_line_file():
    import argparse

    text = Path(argparse.__file__).read_text()
    parse_source(text, "python")      # warm the parser and query caches
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        parsed = parse_source(text, "python")
        timings.append(time.perf_counter() - start)
    lines = text.count("\n")
    best = min(timings) * 1000
    print(f"argparse.py: {lines} lines parsed and extracted in {best:.1f} ms (best of 5)")
    assert len(parsed.definitions) > 100
    assert best < 500      # generous: shared 2-core machine


def test_incremental_reparse_equals_a_full_parse():
    import random

    from tests.indexer.stdlib_repos import STDLIB

    rng = random.Random(7)
    text = (STDLIB / "json" / "decoder.py").read_text()
    state = parse_source(text, "python").tree_state
    for _ in range(25):   # insertions, deletions and replacements, some breaking the syntax
        i = rng.randrange(len(text))
        j = min(len(text), i + rng.randrange(0, 30))
        text = text[:i] + rng.choice(["", "x", "\n", "def f(a):\n    return a\n", '"""', "(", "é"]) + text[j:]
        incremental = parse_source(text, "python", previous=state)
        full = parse_source(text, "python")
        state = incremental.tree_state
        assert incremental == full
        assert str(incremental.tree_state.tree.root_node) == str(full.tree_state.tree.root_node)
