"""Reading a landing file in chunks: bounded memory, line ranges that tile the file, and duplicates
found across chunks."""

import json
import tracemalloc
from pathlib import Path

import pytest
from records_files import assert_every_line_accounted, read_checked

from dagster_autopilot.records import RecordSpec, iter_batches, read_records

SPEC = RecordSpec(id_column="id", columns={"id": "text", "notes": "text", "years": "integer"})


def test_chunks_cover_consecutive_line_ranges_and_find_repeats_across_them(tmp_path: Path):
    path = tmp_path / "people.csv"
    path.write_text('id,notes,years\na1,one,1\n\na2,"two\nlines",2\na3,three,x\na1,one,1\n\n')

    chunks = list(iter_batches(path, SPEC, batch_rows=2))

    assert [(chunk.first_line, chunk.last_line) for chunk in chunks] == [(1, 5), (6, 8)]
    first, second = chunks
    assert [record["id"] for record in first.records] == ["a1", "a2"]
    assert (first.header_lines, first.blank_lines, first.kept_lines) == (1, 1, 3)
    assert (second.records, second.duplicates, second.quarantined_count) == ([], 1, 1)
    assert (second.blank_lines, second.kept_lines, second.quarantined_lines) == (1, 1, 1)
    assert_every_line_accounted(path, chunks)
    assert read_checked(path, SPEC).duplicates == 1


@pytest.mark.parametrize("after_line", [1, 3, 5, 6, 8])
def test_reading_on_after_a_line_gives_the_rows_after_it_whatever_the_chunk_size(
    tmp_path: Path, after_line: int
):
    path = tmp_path / "people.csv"
    path.write_text('id,notes,years\na1,one,1\n\na2,"two\nlines",2\na3,three,x\na1,one,1\n\n')
    whole = read_records(path, SPEC)

    chunks = list(iter_batches(path, SPEC, batch_rows=1, after_line=after_line))

    assert chunks[0].first_line == after_line + 1
    assert chunks[-1].last_line == 8
    records = [record for chunk in chunks for record in chunk.records]
    assert records == [r for r in whole.records if r["line_number"] > after_line]
    quarantined = [row for chunk in chunks for row in chunk.quarantined]
    assert quarantined == [row for row in whole.quarantined if row.line_number > after_line]
    # Line 7 repeats line 2: a repeat even when line 2 was read before.
    assert sum(chunk.duplicates for chunk in chunks) == (1 if after_line < 7 else 0)
    lines = sum(c.blank_lines + c.kept_lines + c.quarantined_lines for c in chunks)
    assert lines == 8 - after_line


def test_an_empty_file_is_one_empty_chunk(tmp_path: Path):
    path = tmp_path / "people.jsonl"
    path.write_text("")

    (chunk,) = iter_batches(path, SPEC)

    assert (chunk.first_line, chunk.last_line, chunk.rows_read) == (1, 0, 0)


def test_only_the_whole_file_read_carries_its_checksum(tmp_path: Path):
    path = tmp_path / "people.jsonl"
    path.write_text('{"id": "a1"}\n')

    assert read_records(path, SPEC).sha256 is not None
    assert [chunk.sha256 for chunk in iter_batches(path, SPEC)] == [None]


def test_a_chunk_size_below_one_is_refused(tmp_path: Path):
    path = tmp_path / "people.jsonl"
    path.write_text('{"id": "a1"}\n')

    with pytest.raises(ValueError, match="batch_rows"):
        iter_batches(path, SPEC, batch_rows=0)


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_reading_in_chunks_holds_about_one_chunk_in_memory(tmp_path: Path, file_format: str):
    # 2,000 rows of 4 KB each: an 8 MB file read 100 rows at a time.
    notes = "x" * 4000
    path = tmp_path / f"people.{file_format}"
    with path.open("w") as out:
        if file_format == "csv":
            out.write("id,notes,years\n")
        for n in range(2000):
            row = {"id": f"p{n}", "notes": notes, "years": n}
            out.write(f"p{n},{notes},{n}\n" if file_format == "csv" else json.dumps(row) + "\n")
    assert path.stat().st_size > 8_000_000

    tracemalloc.start()
    try:
        rows = sum(chunk.rows_read for chunk in iter_batches(path, SPEC, batch_rows=100))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert rows == 2000
    # A chunk holds 100 rows of 4 KB: the peak is a couple of chunks, not the 8 MB file.
    assert peak < 3_000_000, f"peak {peak:,} bytes for a file of {path.stat().st_size:,}"
