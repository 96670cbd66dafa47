"""Reads a landing file (CSV or JSONL) and sorts its rows into kept records and quarantined rows.

Generic: the columns come from a `RecordSpec` (declared in YAML), nothing here knows a table of this
project. No Dagster, no database: the caller writes the kept records and the quarantine wherever it
wants.

Counting, per file:
- `rows_read`: every non-blank data row (a CSV header is not a row).
- `kept_count`: rows that passed validation, *including* exact repeats of an earlier row of the same
  file. Each distinct record appears once in `records`; the repeats are only counted, in `duplicates`.
- `quarantined_count`: rows that failed, one entry each in `quarantined`.
The invariant is `rows_read == kept_count + quarantined_count`, and
`len(records) == kept_count - duplicates`.
"""

import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ColumnType = Literal["text", "integer"]
QuarantineReason = Literal[
    "missing_id", "empty_text", "wrong_type", "oversized_text", "invalid_encoding", "malformed_row"
]
QUARANTINE_REASONS: tuple[QuarantineReason, ...] = (
    "missing_id",
    "empty_text",
    "wrong_type",
    "oversized_text",
    "invalid_encoding",
    "malformed_row",
)
# A quarantined row keeps its text for a person to look at, not to be replayed: an oversized row
# must not make the quarantine table oversized too.
RAW_TEXT_CAP = 2000
# The raw tables store integers as SQL INTEGER (32-bit in PostgreSQL).
_INTEGER_MIN, _INTEGER_MAX = -(2**31), 2**31 - 1
SUPPORTED_EXTENSIONS = (".csv", ".jsonl")
# Plain ASCII digits only: Python's int() would also accept "1_000" and non-ASCII digits.
_DECIMAL_INTEGER = re.compile(r"[+-]?[0-9]+")


class RecordSpec(BaseModel):
    """Which columns a landing file's records carry, and what makes a record acceptable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id_column: str
    """The column that identifies a record, e.g. `candidate_id`. Always text, always required;
    kept without surrounding whitespace."""

    columns: dict[str, ColumnType]
    """Every column kept from a record, with its type: `text` or `integer`. Other fields of the
    file are ignored. Integer columns may be empty (stored as null)."""

    required: list[str] = Field(default_factory=list)
    """Text columns that must be non-empty after trimming whitespace (besides `id_column`)."""

    max_text_chars: int = Field(default=10_000, gt=0)
    """A text value longer than this quarantines its row (`oversized_text`); nothing is truncated."""

    @model_validator(mode="after")
    def _columns_are_consistent(self) -> "RecordSpec":
        if self.columns.get(self.id_column) != "text":
            raise ValueError(f"id_column '{self.id_column}' must be one of `columns`, of type text")
        for name in self.required:
            if self.columns.get(name) != "text":
                raise ValueError(f"required column '{name}' must be one of `columns`, of type text")
        return self

    @property
    def required_text_columns(self) -> list[str]:
        """The id column, then the other required columns, without repeats."""
        return list(dict.fromkeys([self.id_column, *self.required]))


@dataclass(frozen=True)
class QuarantinedRow:
    """A row that was not kept, and why."""

    line_number: int
    """1-based line of the file where the row starts."""
    reason: QuarantineReason
    detail: str
    """Which column, or what the parser said."""
    raw_text: str
    """The row as it was in the file, decoded with replacement characters, at most RAW_TEXT_CAP
    characters."""


@dataclass
class Batch:
    """What one landing file held: its kept records, its quarantined rows and their counts."""

    path: Path
    sha256: str
    """Checksum of the whole file, so a caller can tell a file it has already loaded."""
    records: list[dict[str, Any]] = field(default_factory=list)
    """Distinct kept records, in file order: the spec's columns, plus `record_hash` and
    `line_number`."""
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    rows_read: int = 0
    duplicates: int = 0
    """Kept rows identical to an earlier row of this file (same `record_hash`), not in `records`."""

    @property
    def kept_count(self) -> int:
        """Rows that passed validation, repeats included."""
        return len(self.records) + self.duplicates

    @property
    def quarantined_count(self) -> int:
        """Rows that failed validation."""
        return len(self.quarantined)

    def reason_counts(self) -> dict[str, int]:
        """Quarantined rows per reason, only the reasons that occurred."""
        return dict(Counter(row.reason for row in self.quarantined))


class UnreadableFileError(ValueError):
    """The file as a whole cannot be read: unknown extension, or a CSV header lacking a column."""


class _RowRejected(Exception):
    def __init__(self, reason: QuarantineReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def record_hash(record: Mapping[str, Any], spec: RecordSpec) -> str:
    """md5 of the canonical JSON of the spec's columns: sorted keys, no spaces, UTF-8."""
    canonical = json.dumps(
        {name: record.get(name) for name in spec.columns},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.md5(canonical.encode("utf-8")).hexdigest()


def read_records(path: str | Path, spec: RecordSpec) -> Batch:
    """Reads a `.csv` (with a header row) or `.jsonl` file, one record per row.

    A bad row never stops the file: it is quarantined with its reason and line number. Raises
    `UnreadableFileError` when the file cannot be read at all, `FileNotFoundError` when it is
    missing.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise UnreadableFileError(
            f"{path}: unsupported extension '{path.suffix}', expected one of {SUPPORTED_EXTENSIONS}"
        )
    data = path.read_bytes()
    batch = Batch(path=path, sha256=hashlib.sha256(data).hexdigest())
    rows = _csv_rows(data, spec, path) if suffix == ".csv" else _jsonl_rows(data)
    seen_hashes: set[str] = set()
    for line_number, raw_line, parse in rows:
        batch.rows_read += 1
        try:
            record = _validate(parse(), spec)
        except _RowRejected as rejected:
            raw_text = raw_line.decode("utf-8", errors="replace")[:RAW_TEXT_CAP]
            batch.quarantined.append(
                QuarantinedRow(line_number, rejected.reason, rejected.detail, raw_text)
            )
            continue
        record["record_hash"] = record_hash(record, spec)
        if record["record_hash"] in seen_hashes:
            batch.duplicates += 1
            continue
        seen_hashes.add(record["record_hash"])
        record["line_number"] = line_number
        batch.records.append(record)
    return batch


# Each row comes as (line number, raw bytes, a function that parses it or raises _RowRejected), so
# that read_records can quarantine any failure with the row's own text.
_Row = tuple[int, bytes, Any]


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _RowRejected("invalid_encoding", f"not UTF-8 at byte {error.start}") from None


def _physical_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for index, line in enumerate(data.split(b"\n"), start=1):
        yield index, line.removesuffix(b"\r")


def _jsonl_rows(data: bytes) -> Iterator[_Row]:
    for line_number, raw in _physical_lines(data):
        if raw.strip():
            yield line_number, raw, _jsonl_parser(raw)


def _jsonl_parser(raw: bytes):
    def parse() -> Mapping[str, Any]:
        try:
            value = json.loads(_decode(raw))
        except json.JSONDecodeError as error:
            raise _RowRejected("malformed_row", f"invalid JSON: {error.msg}") from None
        if not isinstance(value, dict):
            raise _RowRejected("malformed_row", f"a JSON {type(value).__name__}, not an object")
        return value

    return parse


def _csv_rows(data: bytes, spec: RecordSpec, path: Path) -> Iterator[_Row]:
    lines = _physical_lines(data)
    header: list[str] | None = None
    for _, raw in lines:
        if raw.strip():
            try:
                header = next(csv.reader([raw.decode("utf-8")]))
            except UnicodeDecodeError:
                raise UnreadableFileError(f"{path}: the CSV header is not UTF-8") from None
            break
    if header is None:
        return
    header = [name.strip() for name in header]
    missing = [name for name in spec.columns if name not in header]
    if missing:
        raise UnreadableFileError(f"{path}: the CSV header lacks the column(s) {missing}")

    # A quoted field may span lines: a record ends on the line where its count of double quotes
    # becomes even (an escaped quote is doubled, so it never changes the parity).
    start, pieces, quotes = 0, [], 0
    for line_number, raw in lines:
        if not pieces and not raw.strip():
            continue
        if not pieces:
            start = line_number
        pieces.append(raw)
        quotes += raw.count(b'"')
        if quotes % 2:
            continue
        record_bytes = b"\n".join(pieces)
        pieces, quotes = [], 0
        yield start, record_bytes, _csv_parser(record_bytes, header)
    if pieces:
        record_bytes = b"\n".join(pieces)
        yield start, record_bytes, _csv_parser(record_bytes, header)


def _csv_parser(record_bytes: bytes, header: list[str]):
    def parse() -> Mapping[str, Any]:
        text = _decode(record_bytes)
        try:
            fields = next(csv.reader(io.StringIO(text), strict=True))
        except (csv.Error, StopIteration) as error:
            raise _RowRejected("malformed_row", f"invalid CSV: {error}") from None
        if len(fields) != len(header):
            raise _RowRejected(
                "malformed_row", f"{len(fields)} fields where the header has {len(header)}"
            )
        return dict(zip(header, fields, strict=True))

    return parse


def _validate(values: Mapping[str, Any], spec: RecordSpec) -> dict[str, Any]:
    identifier = values.get(spec.id_column)
    if identifier is None or (isinstance(identifier, str) and not identifier.strip()):
        raise _RowRejected("missing_id", f"no value for '{spec.id_column}'")
    record: dict[str, Any] = {}
    for name, column_type in spec.columns.items():
        value = values.get(name)
        if column_type == "integer":
            record[name] = _integer(name, value)
            continue
        if value is not None and not isinstance(value, str):
            raise _RowRejected("wrong_type", f"'{name}' is a {type(value).__name__}, not text")
        if name == spec.id_column:
            # Whitespace around a key is never meaningful: " c1" and "c1" are the same record.
            value = value.strip()
        # CSV cannot tell an empty field from a missing one, so neither can JSONL: both are null.
        record[name] = value if value and value.strip() else None
    for name in spec.required_text_columns:
        if record[name] is None:
            raise _RowRejected("empty_text", f"'{name}' is empty")
    for name, column_type in spec.columns.items():
        if (
            column_type == "text"
            and record[name] is not None
            and len(record[name]) > spec.max_text_chars
        ):
            raise _RowRejected(
                "oversized_text",
                f"'{name}' has {len(record[name])} characters, more than {spec.max_text_chars}",
            )
    return record


def _integer(name: str, value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise _RowRejected("wrong_type", f"'{name}' is a bool, not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DECIMAL_INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, str):
        raise _RowRejected("wrong_type", f"'{name}' is {value[:40]!r}, not an integer")
    else:
        raise _RowRejected("wrong_type", f"'{name}' is a {type(value).__name__}, not an integer")
    if not _INTEGER_MIN <= number <= _INTEGER_MAX:
        raise _RowRejected("wrong_type", f"'{name}' is {number}, outside the 32-bit integer range")
    return number
