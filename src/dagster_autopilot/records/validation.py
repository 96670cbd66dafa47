"""Reads a landing file (CSV or JSONL) and sorts its rows into kept records and quarantined rows.

Generic: the columns come from a `RecordSpec` (declared in YAML), nothing here knows a table of this
project. No Dagster, no database: the caller writes the kept records and the quarantine wherever it
wants.

A file is read line by line (`iter_batches` yields it in chunks of bounded size; `read_records`
returns it whole). A CSV file is parsed by Python's `csv` module in strict mode, record by record:
a quoted field may span lines, and a record that cannot be parsed, or has more or fewer fields than
the header, is quarantined on its first line alone, and parsing resumes on the next line. So every
physical line of a file is the CSV header, blank, part of a kept row, or part of a quarantined row.

Counting, per file or chunk:
- `rows_read`: every non-blank data row (a CSV header is not a row).
- `kept_count`: rows that passed validation, *including* exact repeats of an earlier row of the same
  file. Each distinct record appears once in `records`; the repeats are only counted, in `duplicates`.
- `quarantined_count`: rows that failed, one entry each in `quarantined`.
The invariants are `rows_read == kept_count + quarantined_count`,
`len(records) == kept_count - duplicates`, and
`header_lines + blank_lines + kept_lines + quarantined_lines == last_line - first_line + 1`.

A file that cannot be read as a whole raises `UnreadableFileError` before any row is returned, with
one of FILE_REJECT_REASONS: an unsupported extension, a CSV header that is not UTF-8, cannot be
parsed, names a column twice or lacks the id column or a required column, a file in UTF-16 or with
NUL bytes, or lines ending with a bare carriage return. A CSV header without an optional column is
fine: the column is null, as in a JSONL record that leaves it out.
"""

import codecs
import contextlib
import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

ColumnType = Literal["text", "integer"]
QuarantineReason = Literal[
    "missing_id", "empty_text", "wrong_type", "oversized_text", "invalid_encoding", "malformed_row"
]
QUARANTINE_REASONS: tuple[QuarantineReason, ...] = get_args(QuarantineReason)
# A quarantined row keeps its text for a person to look at, not to be replayed: an oversized row
# must not make the quarantine table oversized too.
RAW_TEXT_CAP = 2000
# The raw tables store integers as SQL INTEGER (32-bit in PostgreSQL).
_INTEGER_MIN, _INTEGER_MAX = -(2**31), 2**31 - 1
SUPPORTED_EXTENSIONS = (".csv", ".jsonl")
FileRejectReason = Literal[
    "unsupported_extension",
    "unreadable_header",
    "duplicate_column",
    "missing_required_column",
    "not_utf8",
    "bad_line_endings",
]
FILE_REJECT_REASONS: tuple[FileRejectReason, ...] = get_args(FileRejectReason)
DEFAULT_BATCH_ROWS = 50_000
# A quoted field that runs on for this long is a quote never closed, not data: its record is
# quarantined on its first line, and holding it never takes more memory than this.
MAX_RECORD_CHARS = 1_000_000
# The csv module refuses fields over 128 KiB by default: such a field would be quarantined as
# malformed on its first line and its other lines read as records of their own. Raised, never
# lowered, so that other users of the module keep any higher limit they set.
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_CHARS))
# How much of the start of a file shows its encoding and line endings.
_START_BYTES = 64 * 1024
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
    """Rows of a landing file, the whole file (`read_records`) or one chunk of it (`iter_batches`):
    kept records, quarantined rows, their counts, and the physical lines they account for."""

    path: Path
    sha256: str | None = None
    """Checksum of the whole file, so a caller can tell a file it has already loaded. Set by
    `read_records`; None for a chunk of `iter_batches`."""
    records: list[dict[str, Any]] = field(default_factory=list)
    """Distinct kept records, in file order: the spec's columns, plus `record_hash` and
    `line_number`."""
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    rows_read: int = 0
    duplicates: int = 0
    """Kept rows identical to an earlier row of this file (same `record_hash`), not in `records`.
    The earlier row may be in an earlier chunk."""
    first_line: int = 1
    last_line: int = 0
    """The physical lines of the file this batch accounts for, 1-based and inclusive. The chunks of
    a file follow each other without gap; an empty file is one batch with `last_line` 0."""
    header_lines: int = 0
    """1 for the batch holding a CSV header line, else 0."""
    blank_lines: int = 0
    """Lines with nothing but whitespace, outside any record."""
    kept_lines: int = 0
    """Lines of kept rows, repeats included (a quoted field may make a row span several lines)."""
    quarantined_lines: int = 0
    """Lines of quarantined rows."""

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
    """The file as a whole cannot be read; `reason` says why, in one of FILE_REJECT_REASONS."""

    def __init__(self, path: str | Path, reason: FileRejectReason, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.reason = reason
        self.problem = problem

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.problem)


class _RowRejected(Exception):
    def __init__(self, reason: QuarantineReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _RecordTooLong(Exception):
    pass


def record_hash(record: Mapping[str, Any], spec: RecordSpec) -> str:
    """md5 of the canonical JSON of the spec's columns: sorted keys, no spaces, UTF-8."""
    return _record_digest({name: record.get(name) for name in spec.columns}).hex()


_CANONICAL_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _record_digest(record: Mapping[str, Any]) -> bytes:
    """The md5 of `record_hash`, for a record holding exactly the spec's columns."""
    return hashlib.md5(_CANONICAL_JSON.encode(record).encode("utf-8")).digest()


def read_records(path: str | Path, spec: RecordSpec) -> Batch:
    """Reads a whole `.csv` (with a header row) or `.jsonl` file, one record per row: all the
    chunks of `iter_batches` as one batch, with the file's sha256.

    A bad row never stops the file: it is quarantined with its reason and line number. Raises
    `UnreadableFileError` when the file cannot be read at all, `FileNotFoundError` when it is
    missing.
    """
    opened = _open(Path(path), spec)
    with opened.path.open("rb") as file:
        sha256 = hashlib.file_digest(file, "sha256").hexdigest()
    (batch,) = _batches(opened, spec, batch_rows=None)
    batch.sha256 = sha256
    return batch


def iter_batches(
    path: str | Path, spec: RecordSpec, batch_rows: int = DEFAULT_BATCH_ROWS, *, after_line: int = 0
) -> Iterator[Batch]:
    """Reads a `.csv` or `.jsonl` file in chunks of at most `batch_rows` rows, holding one chunk in
    memory at a time. Repeats are found across the whole file, not only within a chunk.

    `after_line`, the last line of a chunk read before (to resume a file), starts the first chunk
    on the next line: the rows up to it are read only so that later repeats of them count as
    repeats, whatever chunk size read them before.

    The whole-file checks (extension, encoding, line endings, CSV header) run before this returns:
    `UnreadableFileError` or `FileNotFoundError` is raised here, never halfway through the chunks.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    if after_line < 0:
        raise ValueError(f"after_line must be 0 or more, not {after_line}")
    return _batches(_open(Path(path), spec), spec, batch_rows, after_line)


class _Row(NamedTuple):
    line_number: int
    """First physical line of the row."""
    lines: list[str]
    """The row's physical lines as read, with their newlines; empty for a blank line."""
    values: Mapping[str, Any] | None
    """The parsed fields, or None for a blank line or a row that could not be parsed."""
    rejection: _RowRejected | None = None


_BLANK: list[str] = []


@dataclass
class _OpenFile:
    path: Path
    text: io.TextIOWrapper
    rows: Iterator[_Row]
    header_lines: int
    blank_lines: int
    """Blank lines before the CSV header."""


def _open(path: Path, spec: RecordSpec) -> _OpenFile:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise UnreadableFileError(
            path,
            "unsupported_extension",
            f"unsupported extension '{path.suffix}', expected one of {SUPPORTED_EXTENSIONS}",
        )
    binary = path.open("rb")
    try:
        _check_start(path, binary.read(_START_BYTES))
        binary.seek(0)
        # Undecodable bytes become lone surrogates, so that one bad row is quarantined on its own
        # instead of failing the file; only "\n" ends a line, a bare "\r" is data.
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="\n")
        if suffix == ".jsonl":
            return _OpenFile(path, text, _jsonl_rows(text), header_lines=0, blank_lines=0)
        return _open_csv(path, text, spec)
    except BaseException:
        binary.close()
        raise


def _check_start(path: Path, start: bytes) -> None:
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFileError(
            path, "not_utf8", "starts with a UTF-16 or UTF-32 byte-order mark: save it as UTF-8"
        )
    if b"\x00" in start:
        raise UnreadableFileError(
            path, "not_utf8", "holds NUL bytes: it is UTF-16, UTF-32 or binary, not UTF-8 text"
        )
    first_line = start.lstrip(b" \t\r\n").split(b"\n", 1)[0]
    if b"\r" in first_line.removesuffix(b"\r"):
        raise UnreadableFileError(
            path,
            "bad_line_endings",
            "its lines end with a bare carriage return (old Mac line endings): "
            "save it with \\n or \\r\\n line endings",
        )


def _open_csv(path: Path, text: io.TextIOWrapper, spec: RecordSpec) -> _OpenFile:
    blank_lines = 0
    for line in text:
        if blank_lines == 0:
            line = line.removeprefix("\ufeff")
        if line.strip():
            break
        blank_lines += 1
    else:
        return _OpenFile(path, text, iter(()), header_lines=0, blank_lines=blank_lines)
    if rejection := _encoding_rejection([line]):
        raise UnreadableFileError(path, "not_utf8", f"the CSV header is {rejection.detail}")
    try:
        header = [name.strip() for name in next(csv.reader([line], strict=True))]
    except csv.Error as error:
        raise UnreadableFileError(
            path, "unreadable_header", f"the CSV header cannot be parsed: {error}"
        ) from None
    # Unnamed columns are never kept, so only named ones can be ambiguous.
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise UnreadableFileError(
            path, "duplicate_column", f"the CSV header has the column(s) {repeated} more than once"
        )
    missing = [name for name in spec.required_text_columns if name not in header]
    if missing:
        raise UnreadableFileError(
            path,
            "missing_required_column",
            f"the CSV header lacks the required column(s) {missing}",
        )
    lines = _CsvLines(text, last_number=blank_lines + 1)
    rows = _csv_rows(lines, header, spec)
    return _OpenFile(path, text, rows, header_lines=1, blank_lines=blank_lines)


def _batches(
    opened: _OpenFile, spec: RecordSpec, batch_rows: int | None, after_line: int = 0
) -> Iterator[Batch]:
    validator = _Validator(spec)
    seen: set[bytes] = set()
    last_line = opened.header_lines + opened.blank_lines
    if after_line:
        batch = Batch(opened.path, first_line=after_line + 1, last_line=max(after_line, last_line))
    else:
        batch = Batch(
            opened.path,
            last_line=last_line,
            header_lines=opened.header_lines,
            blank_lines=opened.blank_lines,
        )
    with opened.text:
        for row in opened.rows:
            if row.line_number <= after_line:
                # Read before: only its digest matters, so that a later repeat is a repeat.
                if row.lines and row.rejection is None:
                    with contextlib.suppress(_RowRejected):
                        seen.add(_record_digest(validator.record(row.values)))
                continue
            if not row.lines:
                batch.blank_lines += 1
                batch.last_line = row.line_number
                continue
            if batch.rows_read == batch_rows:
                yield batch
                batch = Batch(opened.path, first_line=batch.last_line + 1, last_line=batch.last_line)
            batch.rows_read += 1
            batch.last_line = row.line_number + len(row.lines) - 1
            rejection = row.rejection
            if rejection is None:
                try:
                    record = validator.record(row.values)
                except _RowRejected as rejected:
                    rejection = rejected
            if rejection is not None:
                raw_text = _raw_text(row.lines)
                batch.quarantined.append(
                    QuarantinedRow(row.line_number, rejection.reason, rejection.detail, raw_text)
                )
                batch.quarantined_lines += len(row.lines)
                continue
            batch.kept_lines += len(row.lines)
            digest = _record_digest(record)
            if digest in seen:
                batch.duplicates += 1
                continue
            seen.add(digest)
            record["record_hash"] = digest.hex()
            record["line_number"] = row.line_number
            batch.records.append(record)
    yield batch


def _raw_text(lines: list[str]) -> str:
    text = "".join(lines)[: RAW_TEXT_CAP + 2].removesuffix("\n").removesuffix("\r")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:RAW_TEXT_CAP]


def _encoding_rejection(lines: list[str]) -> _RowRejected | None:
    """Where the lines, read with surrogate escapes, held a byte that is not UTF-8."""
    for index, line in enumerate(lines):
        if line.isascii():
            continue
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as error:
            before = "".join(lines[:index]) + line[: error.start]
            offset = len(before.encode("utf-8", "surrogateescape"))
            return _RowRejected("invalid_encoding", f"not UTF-8 at byte {offset}")
    return None


def _jsonl_rows(text: io.TextIOWrapper) -> Iterator[_Row]:
    for line_number, line in enumerate(text, start=1):
        if line_number == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            yield _Row(line_number, _BLANK, None)
            continue
        lines = [line]
        if rejection := _encoding_rejection(lines):
            yield _Row(line_number, lines, None, rejection)
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            rejection = _RowRejected("malformed_row", f"invalid JSON: {error.msg}")
            yield _Row(line_number, lines, None, rejection)
            continue
        if not isinstance(value, dict):
            rejection = _RowRejected("malformed_row", f"a JSON {type(value).__name__}, not an object")
            yield _Row(line_number, lines, None, rejection)
            continue
        yield _Row(line_number, lines, value)


class _CsvLines:
    """The physical lines after a CSV header, as `csv.reader` pulls them, keeping the lines of the
    record being read: a record that cannot be parsed is quarantined on its first line alone, and
    its other lines are read again as the start of the next record."""

    def __init__(self, text: Iterator[str], last_number: int):
        self._text = text
        self._again: list[str] = []
        """Lines to read again, the next one last."""
        self.last_number = last_number
        """The line number of the line handed out last."""
        self.record: list[str] = []
        self._record_chars = 0

    def __iter__(self) -> "_CsvLines":
        return self

    def __next__(self) -> str:
        if self._again:
            line = self._again.pop()
        else:
            line = next(self._text)
            # A newline inside a quoted field is "\n" whatever the file's line endings, so that
            # the same record hashes the same from any file.
            if line.endswith("\r\n"):
                line = line[:-2] + "\n"
        self.last_number += 1
        self.record.append(line)
        self._record_chars += len(line)
        if self._record_chars > MAX_RECORD_CHARS:
            raise _RecordTooLong
        return line

    def start_record(self) -> None:
        self.record = []
        self._record_chars = 0

    def read_again_after_first_line(self) -> None:
        rest = self.record[1:]
        self._again.extend(reversed(rest))
        self.last_number -= len(rest)
        del self.record[1:]


def _csv_rows(lines: _CsvLines, header: list[str], spec: RecordSpec) -> Iterator[_Row]:
    positions = [(name, header.index(name)) for name in spec.columns if name in header]
    reader = csv.reader(lines, strict=True)
    while True:
        lines.start_record()
        line_number = lines.last_number + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            fields, problem = None, f"invalid CSV: {error}"
        except _RecordTooLong:
            fields = None
            problem = f"a record over {MAX_RECORD_CHARS:,} characters: a quote that is never closed?"
        if fields is not None and len(lines.record) == 1 and not lines.record[0].strip():
            yield _Row(line_number, _BLANK, None)
            continue
        if fields is not None and len(fields) == len(header):
            record_lines = lines.record
            rejection = _encoding_rejection(record_lines)
            values = None if rejection else {name: fields[index] for name, index in positions}
            yield _Row(line_number, record_lines, values, rejection)
            continue
        if fields is not None:
            problem = f"{len(fields)} fields where the header has {len(header)}"
        if len(lines.record) > 1:
            lines.read_again_after_first_line()
        # A new reader: the old one stopped in the middle of a record.
        reader = csv.reader(lines, strict=True)
        first_line = lines.record
        rejection = _encoding_rejection(first_line) or _RowRejected("malformed_row", problem)
        yield _Row(line_number, first_line, None, rejection)


class _Validator:
    """Turns a row's parsed values into a record of the spec's columns, or raises _RowRejected.

    When a row has several faults, the first of these is its reason: missing id, a value of the
    wrong type (in column order), an empty required text, then bad or oversized text."""

    def __init__(self, spec: RecordSpec):
        self._id_column = spec.id_column
        self._columns = [(name, column_type == "text") for name, column_type in spec.columns.items()]
        self._required = spec.required_text_columns
        self._text_columns = [name for name, is_text in self._columns if is_text]
        self._max_text_chars = spec.max_text_chars

    def record(self, values: Mapping[str, Any]) -> dict[str, Any]:
        identifier = values.get(self._id_column)
        if identifier is None or (isinstance(identifier, str) and not identifier.strip()):
            raise _RowRejected("missing_id", f"no value for '{self._id_column}'")
        record: dict[str, Any] = {}
        for name, is_text in self._columns:
            value = values.get(name)
            if not is_text:
                record[name] = _integer(name, value)
                continue
            if value is not None and not isinstance(value, str):
                raise _RowRejected("wrong_type", f"'{name}' is a {type(value).__name__}, not text")
            if name == self._id_column:
                # Whitespace around a key is never meaningful: " c1" and "c1" are the same record.
                value = value.strip()
            # CSV cannot tell an empty field from a missing one, so neither can JSONL: both are null.
            record[name] = value if value and not value.isspace() else None
        for name in self._required:
            if record[name] is None:
                raise _RowRejected("empty_text", f"'{name}' is empty")
        for name in self._text_columns:
            value = record[name]
            # Plain short text, the common case, passes without a call.
            if value is not None and (
                len(value) > self._max_text_chars or "\x00" in value or not value.isascii()
            ):
                _check_text(name, value, self._max_text_chars)
        return record


def _check_text(name: str, value: str, max_chars: int) -> None:
    # A JSON "\ud800" escape decodes to half a surrogate pair, which no UTF-8 column can hold.
    if not value.isascii() and _has_lone_surrogate(value):
        raise _RowRejected("invalid_encoding", f"'{name}' holds an unpaired surrogate, not Unicode text")
    if "\x00" in value:
        raise _RowRejected(
            "invalid_encoding", f"'{name}' holds a NUL character, which PostgreSQL text cannot store"
        )
    if len(value) > max_chars:
        raise _RowRejected(
            "oversized_text", f"'{name}' has {len(value)} characters, more than {max_chars}"
        )


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
