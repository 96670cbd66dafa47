"""Landing files into a raw table: each file once, each record once, bad rows quarantined.

Arrivals are tracked in a ledger table in the warehouse (`autopilot_arrivals`), one row per file
content (sha256). The ledger, not the sensor cursor, is what makes ingestion exactly-once: a file sent
again, a cursor reset, or a manual materialization finds the file already ledgered and skips it.
It stands in for a dynamic partition per arrival batch: the downstream dbt models and vectors are
whole tables, and partitions would only add a partition mapping to every one of them.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster_autopilot.records import RecordSpec, read_records
from dagster_autopilot.warehouse import Column, Session, Warehouse

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


def quarantine_table(table: str) -> str:
    return f"{table}_quarantine"


def landing_files(folder: Path) -> list[Path]:
    """The CSV and JSONL files in `folder`, oldest first, so arrivals are ingested in order."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in LANDING_SUFFIXES]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class IngestReport:
    """What one ingestion did; `records_in == records_kept + records_quarantined` always holds."""

    files_ingested: list[str] = field(default_factory=list)
    files_already_ingested: list[str] = field(default_factory=list)
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


def ingest(warehouse: Warehouse, table: str, spec: RecordSpec, files: Iterable[Path]) -> IngestReport:
    """Ingests the files not yet in the ledger, in one transaction.

    A record already stored (same id, same content) counts as kept and duplicate and is not stored
    again; the same id with new content is a new row, and the dbt model keeps the latest.
    """
    report = IngestReport()
    arrived = datetime.min
    with warehouse.connect() as session:
        _create_tables(session, table, spec)
        mark = session.placeholder
        ledgered = {
            sha
            for (sha,) in session.fetch_all(
                f"select file_sha256 from {LEDGER_TABLE} where target_table = {mark}", (table,)
            )
        }
        stored = set(session.fetch_all(f"select {spec.id_column}, record_hash from {table}"))
        for path in files:
            sha = file_sha256(path)
            if sha in ledgered:
                report.files_already_ingested.append(path.name)
                continue
            ledgered.add(sha)
            # Strictly increasing per file, so "latest row per id" follows the arrival order even
            # for files ingested within the same clock tick.
            arrived = max(datetime.now(UTC).replace(tzinfo=None), arrived + timedelta(microseconds=1))
            _ingest_file(session, table, spec, path, sha, stored, arrived, report)
        report.table_rows = session.fetch_all(f"select count(*) from {table}")[0][0]
    return report


def _create_tables(session: Session, table: str, spec: RecordSpec) -> None:
    session.create_table(table, raw_columns(spec))
    session.create_table(quarantine_table(table), QUARANTINE_COLUMNS)
    session.create_table(LEDGER_TABLE, LEDGER_COLUMNS)


def _ingest_file(
    session: Session,
    table: str,
    spec: RecordSpec,
    path: Path,
    sha: str,
    stored: set[tuple],
    now: datetime,
    report: IngestReport,
) -> None:
    batch = read_records(path, spec)
    new_rows: list[Sequence[object]] = []
    duplicates = batch.duplicates  # repeats inside the file
    for record in batch.records:
        key = (record[spec.id_column], record["record_hash"])
        if key in stored:
            duplicates += 1  # already stored by an earlier file
            continue
        stored.add(key)
        values = [record[name] for name in spec.columns]
        new_rows.append([*values, record["record_hash"], path.name, record["line_number"], now])
    session.insert(table, [name for name, _ in raw_columns(spec)], new_rows)
    session.insert(
        quarantine_table(table),
        [name for name, _ in QUARANTINE_COLUMNS],
        [(path.name, sha, q.line_number, q.reason, q.raw_text, now) for q in batch.quarantined],
    )
    kept, quarantined = batch.kept_count, batch.quarantined_count
    session.insert(
        LEDGER_TABLE,
        [name for name, _ in LEDGER_COLUMNS],
        [(table, path.name, sha, batch.rows_read, kept, duplicates, quarantined, now)],
    )
    report.files_ingested.append(path.name)
    report.records_in += batch.rows_read
    report.records_kept += kept
    report.records_new += len(new_rows)
    report.records_duplicate += duplicates
    report.records_quarantined += quarantined
    report.quarantine_reasons.update(q.reason for q in batch.quarantined)


def pending_files(folder: Path, seen: dict[str, list]) -> tuple[list[Path], dict[str, list]]:
    """Files of `folder` that are new or changed since `seen`, and the updated `seen`.

    `seen` maps a file name to `[size, mtime_ns, sha256]`, so an unchanged file is not hashed again.
    A file rewritten with the same bytes is not new; with new bytes it is.
    """
    updated: dict[str, list] = {}
    new: list[Path] = []
    for path in landing_files(folder):
        stat = path.stat()
        previous = seen.get(path.name)
        if previous and previous[0] == stat.st_size and previous[1] == stat.st_mtime_ns:
            updated[path.name] = previous
            continue
        sha = file_sha256(path)
        updated[path.name] = [stat.st_size, stat.st_mtime_ns, sha]
        if not previous or previous[2] != sha:
            new.append(path)
    return new, updated
