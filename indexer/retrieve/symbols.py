"""Definitions of the identifiers used around the cursor (the curriculum paper's context examples).

A model completing ``total = compute_tax(order`` needs ``compute_tax``'s signature more than
any lexically similar code. Names are looked up nearest-first; a name defined in many
places (``__init__``, ``get``) says little, so its definitions score lower and very
ambiguous names are skipped.
"""

from __future__ import annotations

from collections import defaultdict

from indexer.retrieve.cursor import Cursor, chunk_snippet
from indexer.store import DefinitionRow, Store
from indexer.types import Snippet

#: Names with more definitions than this are too ambiguous to help.
MAX_DEFINITIONS_PER_NAME = 6


def definition_snippets(store: Store, cursor: Cursor, limit: int, *, max_names: int = 24,
                        preferred_paths: frozenset[str] = frozenset()) -> list[Snippet]:
    """Ranked definitions of ``cursor.near_identifiers``; none that encloses the cursor itself."""
    names = cursor.near_identifiers[:max_names]
    by_name: dict[str, list[DefinitionRow]] = defaultdict(list)
    for row in store.definitions(names):
        if row.path == cursor.path and row.start_line <= cursor.line <= row.end_line:
            continue  # the function being written: visible already
        by_name[row.name].append(row)
    picked: list[tuple[float, int]] = []
    for rank, name in enumerate(names):
        rows = by_name.get(name)
        if not rows or len(rows) > MAX_DEFINITIONS_PER_NAME:
            continue
        # Prefer the definition the current file imports, then ones in this file's folder.
        folder = cursor.path.rpartition("/")[0]
        rows.sort(key=lambda r: (r.path not in preferred_paths, r.path.rpartition("/")[0] != folder, r.path))
        for j, row in enumerate(rows[:2]):
            if row.chunk_id is not None:
                picked.append((1.0 / (1 + rank) / len(rows) / (1 + j), row.chunk_id))
    picked.sort(key=lambda p: -p[0])
    picked = picked[:limit]
    rows = {r.id: r for r in store.chunks([cid for _, cid in picked])}
    return [chunk_snippet(rows[cid], "definition", score) for score, cid in picked if cid in rows]
