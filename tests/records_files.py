"""Helpers for the landing-file reader tests: read a file both whole and in chunks, and check that
every physical line of it is accounted for."""

import itertools
from pathlib import Path

from dagster_autopilot.records import Batch, RecordSpec, iter_batches, read_records

# Small enough that the test files, a few lines each, are read in several chunks.
SMALL_CHUNK_ROWS = 2


def physical_line_count(path: Path) -> int:
    """Lines of the file, counted from its bytes: a last line without a newline still counts."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def assert_every_line_accounted(path: Path, chunks: list[Batch]) -> None:
    """The chunks tile the file's lines from 1 to the last, and in each chunk header, blank, kept
    and quarantined lines add up to its range, with the row counts consistent with them."""
    assert chunks, f"{path}: no chunk at all"
    assert chunks[0].first_line == 1
    assert chunks[-1].last_line == physical_line_count(path)
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.first_line == previous.last_line + 1
    for chunk in chunks:
        lines = chunk.header_lines + chunk.blank_lines + chunk.kept_lines + chunk.quarantined_lines
        assert lines == chunk.last_line - chunk.first_line + 1, chunk
        assert chunk.rows_read == chunk.kept_count + chunk.quarantined_count
        assert chunk.kept_lines >= chunk.kept_count
        assert chunk.quarantined_lines >= chunk.quarantined_count
        starts = [row.line_number for row in chunk.quarantined]
        starts += [record["line_number"] for record in chunk.records]
        assert len(set(starts)) == len(starts), f"two rows start on the same line: {sorted(starts)}"
        assert all(chunk.first_line <= start <= chunk.last_line for start in starts)


def read_checked(path: Path, spec: RecordSpec) -> Batch:
    """`read_records(path, spec)`, after checking that reading the file in small chunks gives the
    same rows and that every line of the file is accounted for, both ways."""
    whole = read_records(path, spec)
    chunks = list(iter_batches(path, spec, batch_rows=SMALL_CHUNK_ROWS))
    assert_every_line_accounted(path, [whole])
    assert_every_line_accounted(path, chunks)
    assert all(chunk.rows_read <= SMALL_CHUNK_ROWS for chunk in chunks)
    assert all(chunk.sha256 is None for chunk in chunks)
    merged = [record for chunk in chunks for record in chunk.records]
    assert merged == whole.records
    assert [row for chunk in chunks for row in chunk.quarantined] == whole.quarantined
    for name in ("rows_read", "duplicates", "header_lines", "blank_lines", "kept_lines"):
        assert sum(getattr(chunk, name) for chunk in chunks) == getattr(whole, name), name
    return whole
