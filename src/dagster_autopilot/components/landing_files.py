"""LandingFilesComponent: a raw table fed by files dropped into a folder, and its sensor."""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import dagster as dg
from dagster.components.resolved.model import Resolver

from dagster_autopilot.assets import landing
from dagster_autopilot.automation.apply import apply_policy
from dagster_autopilot.automation.policy import PolicyInput
from dagster_autopilot.field_checks import require_number
from dagster_autopilot.records import RecordSpec
from dagster_autopilot.warehouse import Warehouse


@dataclass
class LandingFilesComponent(dg.Component, dg.Resolvable):
    """A raw-table asset fed by CSV or JSONL files, and a sensor that requests it when files land.

    The sensor picks each new file up once (its cursor remembers each file's size, mtime and
    sha256) and requests one run for all the files that landed since its last tick. The asset
    ingests every file not yet in the warehouse's arrivals ledger, so a file sent again, a repeated
    record, or a manual run duplicates nothing. Malformed rows go to `<asset>_quarantine` with a
    reason, and records in = records kept + records quarantined.
    """

    asset_key: str
    """Key of the raw asset, and name of its warehouse table, e.g. `raw_candidates`."""

    landing_dir: str
    """Folder the files arrive in. A relative path is read from the project root."""

    id_column: str
    """Column that identifies a record; a row without it is quarantined as `missing_id`."""

    columns: dict[str, Literal["text", "integer"]]
    """Every column kept from a file, with its type, in table order (include `id_column`)."""

    required: list[str] = field(default_factory=list)
    """Text columns that must be non-empty; an empty one quarantines the row as `empty_text`."""

    max_text_chars: int = 20_000
    """Longest text kept in any column; longer rows are quarantined as `oversized_text`."""

    sample_files: list[str] = field(default_factory=list)
    """Files ingested with the first run, so a fresh project has data. Relative to the project root."""

    sensor_interval_seconds: int = 10
    """How often the sensor looks at the folder."""

    automation: Annotated[PolicyInput, Resolver.passthrough()] = "eager"
    """`eager`: ingest when the table is missing or this spec changes (the sensor handles
    arrivals); `lazy` or `none`: only the sensor and manual runs ingest."""

    group_name: str | None = None
    """Asset group shown in the UI."""

    description: str | None = None
    """What the raw table holds, shown in the UI."""

    def __post_init__(self) -> None:
        require_number("max_text_chars", self.max_text_chars, minimum=1)
        require_number("sensor_interval_seconds", self.sensor_interval_seconds, minimum=1)

    @property
    def record_spec(self) -> RecordSpec:
        return RecordSpec(
            id_column=self.id_column,
            columns=dict(self.columns),
            required=list(self.required),
            max_text_chars=self.max_text_chars,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        folder = _resolve(context.project_root, self.landing_dir)
        samples = [_resolve(context.project_root, name) for name in self.sample_files]
        record_spec = self.record_spec
        table = self.asset_key

        spec = apply_policy(
            dg.AssetSpec(
                key=table,
                group_name=self.group_name,
                description=self.description or f"Records landed in {self.landing_dir}.",
                kinds={"python"},
                code_version=self._code_version(samples),
            ),
            self.automation,
        )

        @dg.multi_asset(specs=[spec], name=f"land_{table}")
        def raw_table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            report = landing.ingest(
                Warehouse.from_env(), table, record_spec, [*samples, *landing.landing_files(folder)]
            )
            context.log.info(
                "landed %s: %d files, %d records in, %d new, %d duplicate, %d quarantined %s",
                table,
                len(report.files_ingested),
                report.records_in,
                report.records_new,
                report.records_duplicate,
                report.records_quarantined,
                dict(report.quarantine_reasons),
            )
            return dg.MaterializeResult(metadata=report.metadata())

        @dg.sensor(
            name=f"{table}_arrivals",
            description=f"Requests {table} when files land in {self.landing_dir}.",
            asset_selection=[table],
            minimum_interval_seconds=self.sensor_interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
        def arrivals(context: dg.SensorEvaluationContext) -> dg.SensorResult:
            seen = json.loads(context.cursor) if context.cursor else {}
            new, seen = landing.pending_files(folder, seen)
            cursor = json.dumps(seen, sort_keys=True)
            if not new:
                return dg.SensorResult(skip_reason=f"No new files in {folder.name}", cursor=cursor)
            batch_key = hashlib.sha256("".join(seen[p.name][2] for p in new).encode()).hexdigest()
            request = dg.RunRequest(
                run_key=f"{table}:{batch_key[:16]}",
                asset_selection=[dg.AssetKey(table)],
                tags={"autopilot/arrivals": ",".join(p.name for p in new)[:200]},
            )
            return dg.SensorResult(run_requests=[request], cursor=cursor)

        return dg.Definitions(assets=[raw_table], sensors=[arrivals])

    def _code_version(self, samples: list[Path]) -> str:
        """Changes with the record spec or a sample file, so such an edit is seen as a code change."""
        digest = hashlib.sha256(repr(self.record_spec).encode())
        for path in samples:
            digest.update(landing.file_sha256(path).encode() if path.exists() else b"missing")
        return digest.hexdigest()[:16]


def _resolve(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path
