"""Typed errors of the indexer (a leaf package, so it has its own base class).

Each file-level error carries ``reason``: the skip reason recorded in an index summary, so
callers can catch :class:`FileSkipError` and count ``err.reason`` without a lookup table.
"""

from __future__ import annotations


class IndexerError(Exception):
    """Base class of every error the indexer raises; the message is one line."""


class RootNotDirectoryError(IndexerError):
    """The workspace root does not exist or is not a directory."""


class RetrievalCancelled(IndexerError):
    """Retrieval stopped because the query's ``should_stop`` said so (work done so far is kept)."""


class PathOutsideWorkspaceError(IndexerError):
    """A file path does not lie inside the workspace root (or leads out of it through a symlink)."""


class FileSkipError(IndexerError):
    """A file cannot be indexed; ``reason`` is its skip reason (see ``walk.SKIP_REASONS``)."""

    reason = "unreadable"

    def __init__(self, path: object, detail: str = "") -> None:
        self.path = str(path)
        message = f"{self.path}: {self.reason.replace('_', ' ')}"
        super().__init__(f"{message} ({detail})" if detail else message)


class BinaryFileError(FileSkipError):
    reason = "binary"


class NotUtf8Error(FileSkipError):
    reason = "not_utf8"


class FileTooLargeError(FileSkipError):
    reason = "too_large"


class FileVanishedError(FileSkipError):
    reason = "vanished"


class UnreadableFileError(FileSkipError):
    reason = "unreadable"
