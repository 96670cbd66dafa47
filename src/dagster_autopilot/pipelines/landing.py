"""Landing files into a raw table: each file once, each record once, bad rows quarantined.

Two halves share the work, and neither needs the other's state:

The ledger (`autopilot_arrivals`, in the warehouse) makes ingestion exactly-once. It has one row per
file content (sha256) and target table, with the file's status: `loading` (and the last line
committed so far), `landed`, or `rejected` (with the reason). A file sent again, a cursor reset, a
manual run or two runs requested for the same file find it ledgered and skip it. Files are landed
`BATCH_ROWS` rows at a time (one chunk of a big file, or many small files), each commit carrying
the ledger rows of its files, so a crash after chunk k resumes at chunk k+1 and stores nothing
twice. New rows go through a staging table and the database's bulk loader (PostgreSQL's `COPY`,
DuckDB's `read_csv`), and one anti-join against the stored rows drops records already stored, so
no Python set of every stored row is built. The DuckDB file allows one writing process at a time:
a landing holds it only while it writes a chunk, and closes it while it reads the next, so dbt and
the other steps wait seconds (their connections wait for the lock), not the length of a big file.

A file that cannot be read at all (`UnreadableFileError`: bad header, not UTF-8...) is a unit of
its own: it is ledgered as `rejected` with the reason, shows in the quarantine table (line 0) and in
the run's metadata, and the other files land. It is not read again until its content changes.

The arrivals sensor never opens the warehouse (a DuckDB file being written cannot be read by
another process), and its cursor stays a few hundred bytes whatever the number of files: a
watermark over the files' change stamps, max(mtime, ctime). ctime is set by the kernel on every
write, rename or `utime` and cannot be set back, so a rewrite that keeps size and mtime (`cp -p`,
`rsync -t`) still moves the file past the watermark; only such files are hashed. A file is settled
once its stamp is older than the sensor's previous look (it did not change between two looks,
less `CLOCK_MARGIN_NS` for coarse file clocks) and older than `settle_seconds`. Each tick requests
one run for the settled window [watermark, end) with a run key unique to the window, and the run
lands every ready file stamped before `end` that the ledger lacks, so files of a failed run are
landed by the next one. The sensor remembers its last request: if that run fails, it requests the
window again after a backoff, under a new run key, without waiting for another arrival. While a run
that builds the table is queued or in progress, the sensor requests nothing and keeps its
watermark: two runs landing the same file at once would collide on the ledger's guard.
"""

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from dagster_autopilot.records import Batch, RecordSpec, UnreadableFileError, iter_batches
from dagster_autopilot.warehouse.connection import Column, Session, Warehouse

LEDGER_TABLE = "autopilot_arrivals"
LEDGER_COLUMNS: list[Column] = [
    ("target_table", "text"),
    ("file_name", "text"),
    ("file_sha256", "text"),
    ("records_in", "integer"),
    ("records_kept", "integer"),
    ("records_duplicate", "integer"),
    ("records_quarantined", "integer"),
    ("ingested_at", "timestamp"),
    ("status", "text"),
    ("reason", "text"),
    ("last_line", "integer"),
]
QUARANTINE_COLUMNS: list[Column] = [
    ("source_file", "text"),
    ("file_sha256", "text"),
    ("line_number", "integer"),
    ("reason", "text"),
    ("raw_text", "text"),
    ("quarantined_at", "timestamp"),
]
LANDING_SUFFIXES = (".csv", ".jsonl")
LOADING, LANDED, REJECTED = "loading", "landed", "rejected"
# Rows read, validated and committed at a time: bounds memory and the transaction's length.
BATCH_ROWS = 25_000
# DuckDB's memory while landing a chunk (its default is 80% of the machine's memory).
DUCKDB_MEMORY_LIMIT = "128MB"
# File clocks can lag the system clock by a tick (ext4) or round to seconds (network shares).
CLOCK_MARGIN_NS = 1_000_000_000
# A failed landing run is requested again after 30 s, 60 s, ... at most every 15 minutes.
RETRY_BASE_SECONDS, RETRY_CAP_SECONDS = 30, 900
# The sensor remembers this many recent files, to tell a rewrite with the same bytes from a change.
RECENT_FILES = 32
RECENT_NAME_CHARS = 100
RECENT_SHA_CHARS = 32
WINDOW_TAG = "autopilot/landing_until"
ARRIVALS_TAG = "autopilot/arrivals"
RUN_KEY_TAG = "dagster/run_key"

CompletionMarker = Literal["none", ".done", "_SUCCESS"]


def clock_ns() -> int:
    """The sensor's clock; a test moves it to simulate later looks."""
    return time.time_ns()


def quarantine_table(table: str) -> str:
    return f"{table}_quarantine"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def change_stamp(path: Path) -> int:
    """When the file last changed in any way: ctime catches rewrites that restore the mtime."""
    stat = path.stat()
    return max(stat.st_mtime_ns, stat.st_ctime_ns)


def is_landing_file(path: Path) -> bool:
    """A `.csv` or `.jsonl` file that is not hidden and not a `_` marker; `name.csv.tmp`,
    `name.csv.part` and the like are still being written and wait for their rename."""
    name = path.name
    return not name.startswith((".", "_")) and path.suffix.lower() in LANDING_SUFFIXES and path.is_file()


def ready_files(folder: Path, marker: CompletionMarker = "none") -> list[tuple[Path, int]]:
    """The landing files of `folder` that their writer has declared complete, each with the stamp
    from which it counts as changed, oldest first.

    - `none`: every landing file, stamped by its own last change;
    - `.done`: a file once `name.csv.done` (or `name.done`) exists, stamped by the later of both;
    - `_SUCCESS`: the files written before the folder's `_SUCCESS`, stamped by the marker.
    """
    if not folder.is_dir():
        return []
    success = folder / "_SUCCESS"
    success_stamp = change_stamp(success) if marker == "_SUCCESS" and success.exists() else None
    found: list[tuple[Path, int]] = []
    for path in folder.iterdir():
        try:
            if not is_landing_file(path):
                continue
            stamp = change_stamp(path)
            if marker == ".done":
                markers = [path.with_name(path.name + ".done"), path.with_suffix(".done")]
                present = [change_stamp(m) for m in markers if m.exists()]
                if not present:
                    continue
                stamp = max(stamp, *present)
            elif marker == "_SUCCESS":
                if success_stamp is None or stamp > success_stamp:
                    continue
                stamp = success_stamp
        except FileNotFoundError:  # removed while we looked
            continue
        found.append((path, stamp))
    return sorted(found, key=lambda item: (item[1], item[0].name))


def settled_files(folder: Path, until_ns: int, marker: CompletionMarker = "none") -> list[Path]:
    """The ready files of `folder` stamped before `until_ns`, oldest first."""
    return [path for path, stamp in ready_files(folder, marker) if stamp < until_ns]


@dataclass
class IngestReport:
    """What one ingestion did; `records_in == records_kept + records_quarantined` always holds."""

    files_ingested: list[str] = field(default_factory=list)
    files_already_ingested: list[str] = field(default_factory=list)
    files_rejected: dict[str, str] = field(default_factory=dict)
    """File name -> why it cannot be read; such files are ledgered as rejected."""
    files_vanished: list[str] = field(default_factory=list)
    records_in: int = 0
    records_kept: int = 0
    records_new: int = 0
    records_duplicate: int = 0
    records_quarantined: int = 0
    quarantine_reasons: Counter = field(default_factory=Counter)
    table_rows: int = 0

    def metadata(self) -> dict[str, object]:
        return {
            "files_ingested": len(self.files_ingested),
            "files_already_ingested": len(self.files_already_ingested),
            "files_rejected": len(self.files_rejected),
            "rejected_files": json.dumps(dict(sorted(self.files_rejected.items()))),
            "records_in": self.records_in,
            "records_kept": self.records_kept,
            "records_new": self.records_new,
            "records_duplicate": self.records_duplicate,
            "records_quarantined": self.records_quarantined,
            "quarantine_reasons": json.dumps(dict(sorted(self.quarantine_reasons.items()))),
            "dagster/row_count": self.table_rows,
        }


def raw_columns(spec: RecordSpec) -> list[Column]:
    """The raw table's columns: the spec's own, then where each row came from."""
    return [
        *spec.columns.items(),
        ("record_hash", "text"),
        ("source_file", "text"),
        ("line_number", "integer"),
        ("ingested_at", "timestamp"),
    ]


class _LockLease:
    """A warehouse session opened when needed. On DuckDB each commit also closes it: the file is
    free while the next chunk is read, so another process waiting for it gets its turn, and the
    database's caches go with the connection, which bounds the landing's memory."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._stack: ExitStack | None = None
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._stack = ExitStack()
            self._session = self._stack.enter_context(self.warehouse.connect())
            if self.warehouse.kind == "duckdb":
                # A chunk needs little: cap DuckDB's caches (it spills to disk beyond), and let
                # it write rows in any order (the order lives in line_number).
                self._session.execute(f"set memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
                self._session.execute("set preserve_insertion_order = false")
        return self._session

    def commit(self) -> None:
        self.session.commit()
        if self.warehouse.kind == "duckdb":
            self.close()

    def close(self, error: BaseException | None = None) -> None:
        if self._stack is not None:
            stack, self._stack, self._session = self._stack, None, None
            if error is None:
                stack.close()
            else:
                stack.__exit__(type(error), error, error.__traceback__)


def ingest(
    warehouse: Warehouse,
    table: str,
    spec: RecordSpec,
    files: Iterable[Path],
    *,
    batch_rows: int = BATCH_ROWS,
) -> IngestReport:
    """Ingests the files not yet landed according to the ledger, `batch_rows` rows at a time.

    A record already stored (same id, same content) counts as kept and duplicate and is not stored
    again; the same id with new content is a new row, and the dbt model keeps the latest. A file
    that cannot be read is rejected (see `IngestReport.files_rejected`) and the others land; any
    other error fails the ingestion, naming the file, with every committed chunk kept. Small files
    share a commit, so many small files are as cheap as one big one.
    """
    report = IngestReport()
    lease = _LockLease(warehouse)
    try:
        _create_tables(lease.session, table, spec)
        lease.commit()
        ledger = _ledger(lease.session, table)
        lease.commit()  # the files are read and hashed with the warehouse free
        group = _Group(table, spec)
        for path in files:
            _read_file(lease, group, ledger, path, report, batch_rows)
        group.flush(lease, report)
        report.table_rows = lease.session.fetch_all(f"select count(*) from {table}")[0][0]
    except BaseException as error:
        lease.close(error)
        raise
    lease.close()
    return report


def _create_tables(session: Session, table: str, spec: RecordSpec) -> None:
    session.create_table(table, raw_columns(spec))
    session.create_table(quarantine_table(table), QUARANTINE_COLUMNS)
    session.create_table(LEDGER_TABLE, LEDGER_COLUMNS)
    schema = "main" if session.warehouse.kind == "duckdb" else session.warehouse.schema
    mark = session.placeholder
    present = {
        name
        for (name,) in session.fetch_all(
            "select column_name from information_schema.columns"
            f" where table_schema = {mark} and table_name = {mark}",
            (schema, LEDGER_TABLE),
        )
    }
    for name, kind in LEDGER_COLUMNS:
        if name not in present:  # a ledger created by an older version of the library
            sql_type = session.warehouse.sql_type(kind)
            session.execute(f"alter table {LEDGER_TABLE} add column {name} {sql_type}")


@dataclass
class _FileState:
    """One file's ledger row: where it was when this run read it, and where it is now."""

    name: str
    sha: str
    status: str = LOADING
    reason: str | None = None
    last_line: int = 0
    records_in: int = 0
    records_kept: int = 0
    records_duplicate: int = 0
    records_quarantined: int = 0
    ingested_at: datetime = datetime.min
    reason_text: str = ""
    started_at: tuple[str, int] | None = None
    """(status, last_line) in the ledger when this run read it, to notice another run's writes."""


def _ledger(session: Session, table: str) -> dict[str, _FileState]:
    """The table's ledger rows by file sha256: one query, whatever the number of files."""
    mark = session.placeholder
    rows = session.fetch_all(
        "select file_name, file_sha256, status, reason, last_line, records_in, records_kept,"
        f" records_duplicate, records_quarantined from {LEDGER_TABLE} where target_table = {mark}",
        (table,),
    )
    ledger = {}
    for name, sha, status, reason, last_line, *counts in rows:
        # A ledger row written by a version without the status column is a landed file.
        state = _FileState(
            name, sha, status or LANDED, reason, last_line or 0, *(n or 0 for n in counts)
        )
        state.started_at = (state.status, state.last_line)
        ledger[sha] = state
    return ledger


def _read_file(
    lease: "_LockLease",
    group: "_Group",
    ledger: dict[str, _FileState],
    path: Path,
    report: IngestReport,
    batch_rows: int,
) -> None:
    try:
        sha = file_sha256(path)
    except FileNotFoundError:
        report.files_vanished.append(path.name)
        return
    state = ledger.get(sha)
    if state is not None and state.status in (LANDED, REJECTED):
        report.files_already_ingested.append(path.name)
        return
    if state is None:
        state = ledger[sha] = _FileState(path.name, sha)
    # Strictly increasing per file, so "latest row per id" follows the arrival order even for
    # files ingested within the same clock tick.
    state.ingested_at = group.next_arrival()
    try:
        # A file resumed after a crash is read on from its last committed line, whatever chunk
        # size committed it.
        batches = iter_batches(path, group.spec, batch_rows=batch_rows, after_line=state.last_line)
        for batch in batches:
            if batch.last_line <= state.last_line:
                continue  # nothing after the committed lines
            group.add(state, batch)
            if group.rows >= batch_rows:
                group.flush(lease, report)
    except UnreadableFileError as error:
        group.reject(state, path, error)
    except FileNotFoundError:
        report.files_vanished.append(path.name)
        return
    except Exception as error:
        if path.name in str(error):
            raise
        raise RuntimeError(f"landing {path} failed: {error}") from error
    else:
        state.status = LANDED
        group.touch(state)
    if state.status == LANDED:
        report.files_ingested.append(path.name)
    else:
        report.files_rejected[path.name] = state.reason_text


class _Group:
    """Chunks of one or more files, written in one transaction with their files' ledger rows."""

    def __init__(self, table: str, spec: RecordSpec):
        self.table, self.spec = table, spec
        self.staged_columns: list[Column] = [
            *spec.columns.items(),
            ("record_hash", "text"),
            ("line_number", "integer"),
            ("batch_index", "integer"),
            ("row_order", "integer"),
        ]
        self._arrived = datetime.min
        self._clear()

    def _clear(self) -> None:
        self.files: list[_FileState] = []
        self.records: list[list] = []
        self.quarantined: list[tuple] = []
        self.batches: list[tuple[_FileState, Batch]] = []
        self.rows = 0

    def next_arrival(self) -> datetime:
        self._arrived = max(
            datetime.now(UTC).replace(tzinfo=None), self._arrived + timedelta(microseconds=1)
        )
        return self._arrived

    def touch(self, state: _FileState) -> int:
        """The index of `state` among this group's files, adding it if new."""
        if not self.files or self.files[-1] is not state:
            self.files.append(state)
        return len(self.files) - 1

    def add(self, state: _FileState, batch: Batch) -> None:
        self.touch(state)
        index = len(self.batches)
        names = [*self.spec.columns, "record_hash", "line_number"]
        for record in batch.records:
            self.records.append([*(record[name] for name in names), index, len(self.records)])
        self.quarantined.extend(
            (state.name, state.sha, q.line_number, q.reason, q.raw_text, state.ingested_at)
            for q in batch.quarantined
        )
        self.batches.append((state, batch))
        self.rows += batch.rows_read

    def reject(self, state: _FileState, path: Path, error: UnreadableFileError) -> None:
        state.status = REJECTED
        state.reason = getattr(error, "reason", None) or "unreadable_file"
        message = str(error) if path.name in str(error) else f"{path}: {error}"
        state.reason_text = f"{state.reason}: {message}"
        self.touch(state)
        self.quarantined.append(
            (state.name, state.sha, 0, state.reason, message[:2000], state.ingested_at)
        )

    def flush(self, lease: "_LockLease", report: IngestReport) -> None:
        """Writes the staged records, quarantined rows and ledger rows, and commits them."""
        if not self.files:
            return
        session = lease.session
        if session.warehouse.kind == "postgres":
            # Two runs landing the same table take turns, so each sees the other's ledger rows.
            session.execute(
                "select pg_advisory_xact_lock(hashtext(%s))", (f"autopilot: land {self.table}",)
            )
        fresh = self._write_records(session)
        session.bulk_insert(
            quarantine_table(self.table), [name for name, _ in QUARANTINE_COLUMNS], self.quarantined
        )
        for index, (state, batch) in enumerate(self.batches):
            new = fresh.get(index, 0)
            duplicates = batch.duplicates + len(batch.records) - new
            state.last_line = max(state.last_line, batch.last_line)
            state.records_in += batch.rows_read
            state.records_kept += batch.kept_count
            state.records_duplicate += duplicates
            state.records_quarantined += batch.quarantined_count
            report.records_in += batch.rows_read
            report.records_kept += batch.kept_count
            report.records_new += new
            report.records_duplicate += duplicates
            report.records_quarantined += batch.quarantined_count
            report.quarantine_reasons.update(q.reason for q in batch.quarantined)
        self._write_ledger(session)
        lease.commit()
        for state in self.files:
            state.started_at = (state.status, state.last_line)
        self._clear()

    def _write_records(self, session: Session) -> dict[int, int]:
        """Stores the staged records not stored yet; returns how many are new, per batch index."""
        staging = f"{self.table}_staging"
        body = ", ".join(
            f"{name} {session.warehouse.sql_type(kind)}" for name, kind in self.staged_columns
        )
        session.execute(f"create temporary table if not exists {staging} ({body})")
        session.execute(f"delete from {staging}")
        session.bulk_insert(staging, [name for name, _ in self.staged_columns], self.records)
        fresh, stored_before = f"{self.table}_fresh", f"{self.table}_stored"
        session.execute(f"drop table if exists {fresh}")
        session.execute(f"drop table if exists {stored_before}")
        key, id_column = f"{self.spec.id_column}, record_hash", self.spec.id_column
        # The stored rows of the staged ids first: a semi-join whose hash table is the chunk's ids,
        # not the whole stored table, so memory does not grow with the table.
        session.execute(
            f"create temporary table {stored_before} as select {key} from {self.table}"
            f" where {id_column} in (select {id_column} from {staging})"
        )
        # The first of each record in this group, unless an earlier file or chunk stored it.
        session.execute(
            f"create temporary table {fresh} as select * from ("
            f" select s.*, row_number() over (partition by {key} order by row_order) as copy"
            f" from {staging} s) s where copy = 1 and not exists (select 1 from {stored_before} t"
            f" where t.{id_column} = s.{id_column} and t.record_hash = s.record_hash)"
        )
        stored = ", ".join(name for name, _ in raw_columns(self.spec))
        values = ", ".join(f"f.{name}" for name in self.spec.columns)
        arrivals = f"{self.table}_batches"
        integer, text, timestamp = (
            session.warehouse.sql_type(k) for k in ("integer", "text", "timestamp")
        )
        session.execute(
            f"create temporary table if not exists {arrivals}"
            f" (batch_index {integer}, source_file {text}, ingested_at {timestamp})"
        )
        session.execute(f"delete from {arrivals}")
        session.bulk_insert(
            arrivals,
            ["batch_index", "source_file", "ingested_at"],
            [(i, state.name, state.ingested_at) for i, (state, _) in enumerate(self.batches)],
        )
        session.execute(
            f"insert into {self.table} ({stored}) select {values}, f.record_hash, a.source_file,"
            f" f.line_number, a.ingested_at from {fresh} f join {arrivals} a using (batch_index)"
        )
        return dict(session.fetch_all(f"select batch_index, count(*) from {fresh} group by 1"))

    def _write_ledger(self, session: Session) -> None:
        """Replaces the group's files' ledger rows, unless another run changed them meanwhile."""
        mark = session.placeholder
        staging = f"{LEDGER_TABLE}_staging"
        body = ", ".join(f"{name} {session.warehouse.sql_type(kind)}" for name, kind in LEDGER_COLUMNS)
        session.execute(f"create temporary table if not exists {staging} ({body})")
        session.execute(f"delete from {staging}")
        session.bulk_insert(
            staging,
            [name for name, _ in LEDGER_COLUMNS],
            [
                (
                    self.table,
                    s.name,
                    s.sha,
                    s.records_in,
                    s.records_kept,
                    s.records_duplicate,
                    s.records_quarantined,
                    s.ingested_at,
                    s.status,
                    s.reason,
                    s.last_line,
                )
                for s in self.files
            ],
        )
        found = {
            sha: (status or LANDED, last_line or 0)
            for sha, status, last_line in session.fetch_all(
                f"select file_sha256, status, last_line from {LEDGER_TABLE}"
                f" where target_table = {mark} and file_sha256 in (select file_sha256 from {staging})",
                (self.table,),
            )
        }
        for state in self.files:
            if found.get(state.sha) != state.started_at:
                raise RuntimeError(
                    f"{state.name}: another run landed part of this file meanwhile; "
                    "a later run lands the rest"
                )
        session.execute(
            f"delete from {LEDGER_TABLE} where target_table = {mark}"
            f" and file_sha256 in (select file_sha256 from {staging})",
            (self.table,),
        )
        names = ", ".join(name for name, _ in LEDGER_COLUMNS)
        session.execute(f"insert into {LEDGER_TABLE} ({names}) select {names} from {staging}")


# --- The arrivals sensor's decisions, kept free of Dagster so they can be tested directly. ---


@dataclass
class ArrivalsCursor:
    """All the arrivals sensor remembers: a few hundred bytes whatever the number of files."""

    look_ns: int | None = None
    """When the sensor last looked at the folder."""
    watermark_ns: int = 0
    """Files stamped before this have been requested."""
    last_request: dict[str, Any] | None = None
    """The latest run requested: `key`, `until` (its window's end), `attempt`, `retry_at`."""
    recent: list[list] = field(default_factory=list)
    """`[name, sha256 prefix]` of the last files requested, newest last."""

    @classmethod
    def parse(cls, text: str | None) -> "ArrivalsCursor":
        data = json.loads(text) if text else {}
        if data.get("v") != 2:
            return cls()  # a cursor of an older format: the ledger keeps re-sends harmless
        return cls(data["look"], data["watermark"], data["last"], data["recent"])

    def dump(self) -> str:
        data = {
            "v": 2,
            "look": self.look_ns,
            "watermark": self.watermark_ns,
            "last": self.last_request,
            "recent": self.recent,
        }
        return json.dumps(data, separators=(",", ":"))


@dataclass
class ArrivalsDecision:
    cursor: ArrivalsCursor
    run_key: str | None = None
    until_ns: int = 0
    files: list[str] = field(default_factory=list)
    reason: str = ""


def look_for_arrivals(
    table: str,
    folder: Path,
    cursor: ArrivalsCursor,
    *,
    now_ns: int,
    settle_seconds: float = 0,
    marker: CompletionMarker = "none",
    last_run_failed: bool = False,
    run_in_progress: str | None = None,
) -> ArrivalsDecision:
    """Decides whether to request a landing run: for files settled since the watermark, or again
    for the last request if its run failed and its backoff is over. While a landing run is in
    progress (`run_in_progress` says which), it requests nothing and keeps its watermark, so the
    files that arrive meanwhile are requested by the first look after that run ends."""
    previous_look, cursor.look_ns = cursor.look_ns, now_ns
    if previous_look is None:
        return ArrivalsDecision(cursor, reason="first look at the folder")
    if run_in_progress:
        # A second run would resume the same files and fail on the ledger's guard. The look
        # still counts: a file unchanged since it is settled when the run ends.
        return ArrivalsDecision(cursor, reason=f"waiting for the landing run to end: {run_in_progress}")
    until = min(previous_look - CLOCK_MARGIN_NS, now_ns - int(settle_seconds * 1e9))
    new: list[str] = []
    if until > cursor.watermark_ns:
        for path, stamp in ready_files(folder, marker):
            if cursor.watermark_ns <= stamp < until and _changed(cursor, path):
                new.append(path.name)
        cursor.watermark_ns = until
    if new:
        key = f"{table}:{until}"
        cursor.last_request = {"key": key, "until": until, "attempt": 0, "retry_at": None}
        return ArrivalsDecision(cursor, key, until, new)
    request = cursor.last_request
    if request and last_run_failed:
        if request["retry_at"] is None:
            wait = min(RETRY_BASE_SECONDS * 2 ** request["attempt"], RETRY_CAP_SECONDS)
            request["retry_at"] = now_ns + wait * 1_000_000_000
        if now_ns >= request["retry_at"]:
            request["attempt"] += 1
            request["retry_at"] = None
            request["key"] = f"{table}:{request['until']}:retry{request['attempt']}"
            return ArrivalsDecision(cursor, request["key"], request["until"], ["(retry)"])
        return ArrivalsDecision(cursor, reason="the last landing run failed: waiting to retry")
    return ArrivalsDecision(cursor, reason=f"no new settled files in {folder.name}")


def _changed(cursor: ArrivalsCursor, path: Path) -> bool:
    """False only for a file rewritten with the bytes it had when last requested."""
    try:
        sha = file_sha256(path)[:RECENT_SHA_CHARS]
    except FileNotFoundError:
        return False
    name = path.name[:RECENT_NAME_CHARS]
    previous = next((entry for entry in cursor.recent if entry[0] == name), None)
    if previous is not None:
        cursor.recent.remove(previous)
    cursor.recent = [*cursor.recent, [name, sha]][-RECENT_FILES:]
    return previous is None or previous[1] != sha
