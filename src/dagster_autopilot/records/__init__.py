"""Landing-file records: reading, validation and quarantine, without Dagster or a database."""

from dagster_autopilot.records.validation import (
    DEFAULT_BATCH_ROWS,
    FILE_REJECT_REASONS,
    QUARANTINE_REASONS,
    Batch,
    FileRejectReason,
    QuarantinedRow,
    QuarantineReason,
    RecordSpec,
    UnreadableFileError,
    iter_batches,
    read_records,
    record_hash,
)

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "FILE_REJECT_REASONS",
    "QUARANTINE_REASONS",
    "Batch",
    "FileRejectReason",
    "QuarantineReason",
    "QuarantinedRow",
    "RecordSpec",
    "UnreadableFileError",
    "iter_batches",
    "read_records",
    "record_hash",
]
