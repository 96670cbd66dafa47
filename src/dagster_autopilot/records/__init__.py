"""Landing-file records: reading, validation and quarantine, without Dagster or a database."""

from dagster_autopilot.records.validation import (
    QUARANTINE_REASONS,
    Batch,
    QuarantinedRow,
    RecordSpec,
    UnreadableFileError,
    read_records,
    record_hash,
)

__all__ = [
    "QUARANTINE_REASONS",
    "Batch",
    "QuarantinedRow",
    "RecordSpec",
    "UnreadableFileError",
    "read_records",
    "record_hash",
]
