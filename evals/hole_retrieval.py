"""The repository under evaluation: its index, and retrieval at a hole without leaking the answer.

The evals run retrieval themselves (``indexer.workspace.Workspace``) and hand the snippets to
the model as client-supplied snippets. That way the in-process engine and a remote server see
the same context, each retrieval setting is exactly the sources it names, and the retrieved
files can be scored. The index lives in the run folder (never the user's cache), because
every hole replaces its file's indexed content with the editor's view of it: the file
without the target line (otherwise the ``definition`` source could quote the answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evals.holes import Hole, load_files
from indexer.types import RetrievalQuery, Snippet
from repocomplete.errors import RepocompleteError
from repocomplete.types import ClientSnippet


class Repository:
    """An indexed folder: its files' text and a workspace index kept in ``cache_dir``."""

    def __init__(self, root: Path, cache_dir: Path, *, progress: bool = True) -> None:
        from indexer.workspace import Workspace

        root = Path(root).expanduser()
        if not root.is_dir():
            raise RepocompleteError(f"not a directory: {root}")
        self.root = root.resolve()
        self.workspace = Workspace(self.root, cache_dir=cache_dir)
        # Files the indexer cannot read are simply not part of the evaluation.
        self.workspace.index(_index_progress() if progress else None)
        self.files = load_files(self.root, self.workspace.files())

    def retrieve(self, hole: Hole, sources: tuple[str, ...], budget_tokens: int, max_snippets: int = 16,
                 visible_text: str = "") -> list[Snippet]:
        """Snippets for the cursor of ``hole`` from exactly ``sources`` (fused when several);
        ``visible_text`` is what the model's window shows (default: the whole file)."""
        query = RetrievalQuery(filepath=hole.path, prefix=hole.prefix, suffix=hole.suffix, language=hole.language,
                               budget_tokens=budget_tokens, max_snippets=max_snippets, sources=sources,
                               visible_text=visible_text)
        return self.workspace.retrieve(query)

    def rankings(self, hole: Hole, sources: tuple[str, ...], max_snippets: int = 16) -> dict[str, list[Snippet]]:
        """Each source's own ranking at ``hole`` (before fusion and packing)."""
        query = RetrievalQuery(filepath=hole.path, prefix=hole.prefix, suffix=hole.suffix, language=hole.language,
                               max_snippets=max_snippets, sources=sources)
        return self.workspace.rankings(query)

    def oracle(self, hole: Hole) -> list[Snippet]:
        """The definitions the hole needs, from their defining files (the "oracle" setting)."""
        names = sorted({g.name for g in hole.gold})
        return [s for s in self.workspace.definitions_of(names) if s.filepath in hole.gold_files]

    @contextmanager
    def editing(self, hole: Hole) -> Iterator[None]:
        """Index the hole's file as the editor sees it (target removed), restore it afterwards."""
        self.workspace.update(hole.path, hole.prefix + hole.suffix)
        try:
            yield
        finally:
            self.workspace.update(hole.path, self.files.get(hole.path, hole.prefix + hole.target + hole.suffix))

    def close(self) -> None:
        self.workspace.close()


def client_snippets(snippets: list[Snippet]) -> list[ClientSnippet]:
    """Snippets as client-supplied ones, scored so that the engine keeps their order."""
    count = len(snippets)
    return [ClientSnippet(filepath=s.filepath, body=s.body, score=float(count - i)) for i, s in enumerate(snippets)]


def _index_progress():
    """A one-line progress report of indexing on stderr."""
    import sys

    def report(progress) -> None:
        if progress.files_total:
            sys.stderr.write(f"\rindexing {progress.files_done}/{progress.files_total} files")
            if progress.files_done >= progress.files_total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return report
