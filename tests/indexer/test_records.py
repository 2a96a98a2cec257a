"""Record building: one file -> a typed result the index writer stores."""

from __future__ import annotations

from indexer.config import IndexConfig
from indexer.records import Built, FileJob, Skipped, Unchanged, content_hash, prepare_file


def test_a_file_is_built_then_unchanged_then_skipped_when_it_turns_binary(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def area(w, h):\n    return w * h\n")
    job = FileJob("mod.py", str(source), "python", 1.0, source.stat().st_size)
    built = prepare_file(job, config=IndexConfig())
    assert isinstance(built, Built) and built.errors == []
    assert [s[0] for s in built.record.symbols] == ["area"] and built.record.hash == content_hash(source.read_text())
    again = prepare_file(job._replace(stored_hash=built.record.hash), config=IndexConfig())
    assert again == Unchanged()
    source.write_bytes(b"\x00\x01binary\x00")
    skipped = prepare_file(job, config=IndexConfig())
    assert isinstance(skipped, Skipped) and skipped.reason == "binary" and skipped.message.startswith("mod.py: ")


def test_a_vanished_file_is_skipped_with_its_reason(tmp_path):
    result = prepare_file(FileJob("gone.py", str(tmp_path / "gone.py"), "python", 1.0, 10), config=IndexConfig())
    assert isinstance(result, Skipped) and "gone.py" in result.message
