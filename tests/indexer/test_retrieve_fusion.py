"""Golden tests of the pure retrieval pieces: fusion, deduplication, packing, Jaccard,
module resolution, the cursor's identifiers."""

from __future__ import annotations

import random

from indexer.retrieve.cursor import make_cursor, near_identifiers
from indexer.retrieve.fusion import RRF_K, dedupe, fuse, is_visible, pack, reciprocal_rank_fusion
from indexer.retrieve.jaccard import jaccard
from indexer.retrieve.proposals import ModuleMap, _normalized_stem, in_file_lines, window_jaccards
from indexer.types import RetrievalQuery, Snippet


def snip(path, start, end, source="bm25", body=None, kind="lines"):
    return Snippet(path, body or f"{path} {start}-{end}", source, 0.0, start, end, kind)


def test_rrf_sums_reciprocal_ranks_and_keeps_the_best_ranked_copy():
    a, b, c = snip("a.py", 1, 10), snip("b.py", 1, 10), snip("c.py", 1, 10)
    fused = reciprocal_rank_fusion({"bm25": [a, b], "jaccard": [snip("b.py", 1, 10, "jaccard"), c]})
    assert [s.filepath for s in fused] == ["b.py", "a.py", "c.py"]
    assert fused[0].score == 1 / (RRF_K + 2) + 1 / (RRF_K + 1)
    assert fused[0].source == "jaccard"  # rank 1 there, rank 2 in bm25


def test_structural_sources_weigh_more_than_one_lexical_hit():
    fused = reciprocal_rank_fusion({"bm25": [snip("a.py", 1, 10)],
                                    "definition": [snip("d.py", 5, 9, "definition", kind="method_names_and_bodies")]})
    assert fused[0].filepath == "d.py"


def test_dedupe_drops_overlaps_visible_text_and_repeated_bodies():
    visible = frozenset({"x = 1", "y = 2"})
    kept = dedupe([
        snip("a.py", 1, 10),
        snip("a.py", 6, 15),                      # half of it is a.py:1-10: same location
        snip("a.py", 11, 20),
        snip("b.py", 1, 2, body="x = 1\ny = 2"),  # already in the prompt window
        snip("c.py", 1, 10, body="a.py 1-10"),    # same text elsewhere
    ], visible)
    assert [(s.filepath, s.start_line) for s in kept] == [("a.py", 1), ("a.py", 11)]


def test_a_definition_replaces_a_better_ranked_window_inside_it():
    window = snip("a.py", 12, 21)
    definition = snip("a.py", 10, 30, "definition", body="def f():\n    pass", kind="method_names_and_bodies")
    kept = dedupe([window, snip("b.py", 1, 10), definition], frozenset())
    assert [(s.filepath, s.source) for s in kept] == [("a.py", "definition"), ("b.py", "bm25")]


def test_pack_respects_budget_and_count():
    snippets = [snip(f"{i}.py", 1, 10, body="w " * n) for i, n in enumerate([50, 500, 30, 10])]
    packed = pack(snippets, budget_tokens=100, count_tokens=None, max_snippets=10)
    assert [s.filepath for s in packed] == ["0.py", "2.py", "3.py"]
    assert len(pack(snippets, 10_000, None, max_snippets=2)) == 2
    assert pack(snippets, 100, count_tokens=lambda text: 10_000, max_snippets=10) == []


def test_fuse_end_to_end():
    out = fuse({"bm25": [snip("a.py", 1, 10), snip("a.py", 3, 12)]}, visible_lines=frozenset(),
               budget_tokens=1000, count_tokens=None, max_snippets=5)
    assert [(s.filepath, s.start_line) for s in out] == [("a.py", 1)]


def test_jaccard():
    assert jaccard({"a", "b"}, {"b", "c"}) == 1 / 3
    assert jaccard(set(), {"a"}) == 0.0


def test_module_map_resolves_python_and_javascript_imports():
    modules = ModuleMap(["email/utils.py", "email/mime/base.py", "email/__init__.py", "web/src/util.js",
                         "web/src/lib/index.ts", "pkg/other/utils.py"])
    assert modules.resolve("email.utils", "email/message.py") == ["email/utils.py"]
    assert modules.resolve(".utils", "email/message.py") == ["email/utils.py"]
    assert modules.resolve("..base", "email/mime/sub/x.py") == ["email/mime/base.py"]
    assert modules.resolve("email", "x.py") == ["email/__init__.py"]
    assert modules.resolve("./util", "web/src/app.js") == ["web/src/util.js"]
    assert modules.resolve("../src/lib", "web/test/app.ts") == ["web/src/lib/index.ts"]
    assert modules.resolve("numpy", "x.py") == []
    # Ambiguous short names prefer the importer's own top-level package.
    assert modules.resolve("utils", "pkg/main.py")[0] == "pkg/other/utils.py"


def test_module_map_resolves_imports_of_the_root_package_itself():
    """Indexing a package folder (stdlib ``email/``): ``email.utils`` is ``utils.py`` at the root."""
    modules = ModuleMap(["utils.py", "mime/base.py", "__init__.py", "message.py"], root_package="email")
    assert modules.resolve("email.utils", "message.py") == ["utils.py"]
    assert modules.resolve("email.mime.base", "message.py") == ["mime/base.py"]
    assert modules.resolve("email", "message.py") == ["__init__.py"]
    assert modules.resolve("os.path", "message.py") == []
    assert ModuleMap(["utils.py"]).resolve("email.utils", "message.py") == []


def test_similar_names_ignore_test_affixes():
    assert {_normalized_stem(p) for p in ("a/test_parser.py", "parser.py", "ParserTest.java",
                                          "parser_test.go", "parser.spec.ts")} == {"parser"}


def test_near_identifiers_nearest_first_without_keywords():
    prefix = "import os\nvalue = compute(a)\nif ready:\n    result = helper.run("
    assert near_identifiers(prefix, "option)\nreturn finish") == [
        "run", "helper", "result", "option", "ready", "compute", "value", "os", "finish"]


def test_bm25_snapshot_agrees_with_fts5_and_sees_later_writes(tmp_path):
    from indexer.retrieve.bm25 import BM25
    from indexer.workspace import Workspace
    from tests.indexer.stdlib_repos import copy_stdlib

    repo = copy_stdlib(tmp_path / "repo", "json")
    with Workspace(repo, cache_dir=tmp_path / "cache") as ws:
        ws.index()
        bm25 = BM25(ws.store, cache_path=tmp_path / "snap.npz")
        assert bm25.snapshot(wait=True) is not None
        terms = ["scanstring", "decode", "errmsg", "end"]
        snap_hits = bm25.search(terms, 5)
        fts_hits = ws.store.search(bm25.match_expression(terms), 5)
        assert [cid for cid, _ in snap_hits] == [cid for cid, _ in fts_hits]
        assert all(abs(a[1] - b[1]) < 1e-3 * abs(b[1]) for a, b in zip(snap_hits, fts_hits))
        assert (tmp_path / "snap.npz").exists()
        # A live buffer written after the snapshot is found through FTS5 (ids above the snapshot).
        ws.update("json/fresh.py", "def zanzibar_quokka(x):\n    return x\n")
        later = BM25(ws.store, cache_path=tmp_path / "snap.npz")
        assert later.snapshot() is not None  # loaded from disk: still usable
        hits = later.search(["zanzibar", "quokka"], 3)
        assert [r.path for r in ws.store.chunks([cid for cid, _ in hits])][0] == "json/fresh.py"


def test_bm25_answers_from_fts5_while_the_snapshot_builds_and_survives_small_reindexes(tmp_path):
    from indexer.retrieve.bm25 import BM25
    from indexer.workspace import Workspace
    from tests.indexer.stdlib_repos import copy_stdlib

    repo = copy_stdlib(tmp_path / "repo", "json")
    with Workspace(repo, cache_dir=tmp_path / "cache") as ws:
        ws.index()
        terms = ["scanstring", "decode", "errmsg", "end"]
        building = BM25(ws.store, cache_path=tmp_path / "fresh.npz")
        assert building.snapshot() is None  # a background build has started
        from_fts = building.search(terms, 5)
        snap = building.snapshot(wait=True)  # waits for the background build, however slow the machine
        assert snap is not None and building.snapshot() is snap and (tmp_path / "fresh.npz").exists()
        assert [cid for cid, _ in building.search(terms, 5)] == [cid for cid, _ in from_fts]

        own = ws.retriever.bm25
        kept = own.snapshot(wait=True)
        target = repo / "json" / "tool.py"
        target.write_text(target.read_text() + "\ndef marsupial_wombat():\n    return 1\n")
        assert ws.index().files_indexed == 1
        assert own.snapshot() is kept  # a small change does not rebuild the snapshot
        hits = own.search(["marsupial", "wombat"], 3)
        assert ws.store.chunks([hits[0][0]])[0].path == "json/tool.py"


def test_waiting_for_a_snapshot_joins_the_background_build_instead_of_racing_it(tmp_path, monkeypatch):
    """The snapshot test was flaky: a wait=True build landed first, then the slower background build replaced it."""
    import threading

    from indexer.retrieve.bm25 import BM25, Snapshot
    from indexer.workspace import Workspace
    from tests.indexer.stdlib_repos import copy_stdlib

    build = Snapshot.build
    released = threading.Event()

    def slow_in_background(store):
        if threading.current_thread().name == "bm25-snapshot":
            released.wait(5)  # the background build lands after any foreground one would have
        return build(store)

    repo = copy_stdlib(tmp_path / "repo", "json")
    with Workspace(repo, cache_dir=tmp_path / "cache") as ws:
        ws.index()
        monkeypatch.setattr(Snapshot, "build", staticmethod(slow_in_background))
        bm25 = BM25(ws.store, cache_path=tmp_path / "snap.npz")
        assert bm25.snapshot() is None  # the background build starts, and is held
        threading.Timer(0.3, released.set).start()
        kept = bm25.snapshot(wait=True)
        assert kept is not None and not bm25._builder.is_alive()
        assert bm25.snapshot() is kept


def test_the_files_own_similar_lines_lead_the_fused_context():
    # A window of this file like the lines before the cursor is where a completion copies from:
    # ranked first, it is what a small prompt keeps when only two or three snippets fit.
    fused = reciprocal_rank_fusion({
        "bm25": [snip("b.py", 1, 10)],
        "definition": [snip("d.py", 5, 9, "definition", kind="method_names_and_bodies")],
        "in_file": [snip("a.py", 40, 49, "in_file")],
    })
    assert [s.source for s in fused] == ["in_file", "definition", "bm25"]


def test_only_the_best_in_file_window_leads_whatever_the_other_scores():
    # A chunk three sources agree on outscores any single source, yet the file's best window
    # still goes first (after what the editor sent); its next window competes by RRF, so other
    # files' definitions keep their place in a small prompt.
    agreed = [snip("b.py", 1, 10, source) for source in ("bm25", "jaccard", "dense")]
    fused = reciprocal_rank_fusion({
        "bm25": [agreed[0]], "jaccard": [agreed[1]], "dense": [agreed[2]],
        "definition": [snip("d.py", 5, 9, "definition", kind="method_names_and_bodies")],
        "in_file": [snip("a.py", 40, 49, "in_file"), snip("a.py", 90, 99, "in_file")],
        "client": [snip("clip.py", 1, 3, "client")],
    })
    assert [(s.filepath, s.start_line) for s in fused] == [
        ("clip.py", 1), ("a.py", 40), ("b.py", 1), ("d.py", 5), ("a.py", 90)]
    assert fused[1].score == 2 / (RRF_K + 1)  # leading changes the order, not the fused score


def test_in_file_windows_centre_on_the_point_after_lines_like_the_query():
    filler = [f"print({i})" for i in range(40)]
    text = "\n".join([
        "def parse_a(value):",
        "    if not value:",
        "        raise ValueError('empty a')",
        "    token = value.strip()",
        "    return token",
        *filler,
        "def parse_b(value):",
        "    if not value:",
        "        raise ValueError('empty b')",
        "    ",
    ])
    prefix, suffix = text, "\nprint('end')"
    visible = "\n".join(text.split("\n")[-8:]) + suffix
    query = RetrievalQuery("a.py", prefix, suffix, visible_text=visible)
    cursor = make_cursor(query, "a.py", query_lines=4)  # the query: parse_b so far
    windows = in_file_lines(cursor, window=10, limit=4)
    top = windows[0]
    # parse_a's first three lines match; the point is after line 3, the snippet lines 1-8
    assert (top.source, top.start_line, top.end_line) == ("in_file", 1, 8)
    assert "token = value.strip()" in top.body  # what followed the matching lines
    assert all(not is_visible(w, cursor.visible_lines) for w in windows)
    assert [w.score for w in windows] == sorted((w.score for w in windows), reverse=True)
    # Nothing alike: no window.
    unrelated = make_cursor(RetrievalQuery("a.py", "zzz = 1\n", "", visible_text="zzz = 1"), "a.py", 10)
    assert in_file_lines(unrelated, window=10, limit=4) == []


def test_in_file_windows_prefer_the_analog_whose_next_lines_match_the_suffix():
    # Two copies of the same four lines above the cursor, followed by different code: the lines
    # after the cursor decide which copy the cursor is repeating (the farther one here, which
    # loses the prefix-only tie to the nearer one).
    head = ["    if stream.closed:", "        raise IOError('closed')", "    header = stream.read(4)",
            "    size = parse_size(header)", "    body = stream.read(size)"]
    same = ["    checksum = crc32(body)", "    verify(checksum, header)", "    return body", "", ""]
    other = ["    log.debug('short read %s', size)", "    return header", "", "", ""]
    blank = [""] * 5
    lines = blank + head + same + blank * 2 + head + other + blank * 2 + head[:4] + ["    "]
    prefix, suffix = "\n".join(lines), "\n" + "\n".join(same[:3])
    query = RetrievalQuery("a.py", prefix, suffix, visible_text="\n".join(head[:4]) + "\n    ")
    cursor = make_cursor(query, "a.py", query_lines=5)
    prefix_only = in_file_lines(cursor, window=10, limit=4, query_lines=5)
    # a tie: the nearer first; each centred after its copy's four lines (line 29, line 9)
    assert prefix_only[0].start_line == 25 and prefix_only[1].start_line == 5
    assert prefix_only[0].score == prefix_only[1].score
    both_sides = in_file_lines(cursor, window=10, limit=4, query_lines=5, suffix_lines=5, suffix_weight=0.5)
    assert both_sides[0].start_line == 6 and "verify(checksum, header)" in both_sides[0].body
    assert both_sides[0].score > prefix_only[0].score


def test_window_jaccards_golden():
    a, b, c = frozenset({"x", "y"}), frozenset({"y", "z"}), frozenset({"w"})
    # windows of 2 ending at 1..3: {x,y}, {x,y,z}, {y,z,w}; the query {x,y}
    assert window_jaccards({"x", "y"}, [a, b, c], 2) == [0.0, 1.0, 2 / 3, 1 / 4]
    assert window_jaccards(set(), [a, b, c], 2) == [0.0] * 4
    assert window_jaccards({"q"}, [a, b, c], 2) == [0.0] * 4  # nothing shared
    assert window_jaccards({"x"}, [], 3) == [0.0]


def test_window_jaccards_equals_a_fresh_union_at_every_line():
    rng = random.Random(7)
    vocab = [f"t{i}" for i in range(25)]
    for _ in range(200):
        n, width = rng.randrange(0, 30), rng.randrange(1, 12)
        sets = [frozenset(rng.sample(vocab, rng.randrange(0, 6))) for _ in range(n)]
        query = set(rng.sample(vocab, rng.randrange(0, 8)))
        fresh = [0.0] + [jaccard(query, set().union(*sets[max(e - width, 0):e])) for e in range(1, n + 1)]
        assert window_jaccards(query, sets, width) == fresh


def test_in_file_windows_centre_on_any_line_and_keep_one_per_location():
    # The analog starts at line 8 (not a multiple of half a window): its snippet is centred
    # on the line after its match; the runners-up, points next to it, are the same location.
    head = ["    if stream.closed:", "        raise IOError('closed')", "    header = stream.read(4)",
            "    size = parse_size(header)"]
    filler = [f"unrelated_{i} = compute_{i}(value_{i})" for i in range(40)]
    lines = filler[:7] + head + ["    body = stream.read(size)"] + filler[7:] + head[:3] + ["    "]
    prefix = "\n".join(lines)
    query = RetrievalQuery("a.py", prefix, "\n", visible_text="\n".join(head[:3]) + "\n    ")
    cursor = make_cursor(query, "a.py", query_lines=4)
    windows = in_file_lines(cursor, window=10, limit=4, query_lines=4)
    top = windows[0]
    assert top.start_line == 8 + 4 - 5 and "body = stream.read(size)" in top.body  # point: after line 11
    ends = sorted(w.start_line for w in windows)
    assert all(b - a > 5 for a, b in zip(ends, ends[1:]))  # fusion's dedupe would merge closer ones
    assert [w.score for w in windows] == sorted((w.score for w in windows), reverse=True)


def test_fusion_weights_and_ties_come_from_the_source_table(monkeypatch):
    import dataclasses

    from indexer.retrieve import sources

    a, b = snip("a.py", 1, 10, "bm25"), snip("b.py", 1, 10, "jaccard")
    assert [s.filepath for s in reciprocal_rank_fusion({"jaccard": [b], "bm25": [a]})] == ["a.py", "b.py"]  # tie: priority
    heavier = dataclasses.replace(sources.RETRIEVAL_SOURCES["jaccard"], weight=3.0)
    monkeypatch.setitem(sources.RETRIEVAL_SOURCES, "jaccard", heavier)
    assert [s.filepath for s in reciprocal_rank_fusion({"jaccard": [b], "bm25": [a]})] == ["b.py", "a.py"]


def test_every_rankable_source_is_in_the_defaults_but_dense_and_client():
    from indexer.retrieve.sources import DEFAULT_SOURCES, RETRIEVAL_SOURCES

    assert set(RETRIEVAL_SOURCES) - set(DEFAULT_SOURCES) == {"dense", "client"}
    assert all(RETRIEVAL_SOURCES[name].rank is not None for name in DEFAULT_SOURCES)
