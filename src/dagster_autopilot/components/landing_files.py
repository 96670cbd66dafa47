"""LandingFilesComponent: a raw table fed by files dropped into a folder, and its sensor."""

import hashlib
import time
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from dagster_autopilot.automation.apply import apply_policy
from dagster_autopilot.automation.run_explain import explain_metadata
from dagster_autopilot.components.fields import ComponentModel, Policy, integer
from dagster_autopilot.pipelines import landing
from dagster_autopilot.records import RecordSpec
from dagster_autopilot.runs.guard import find_blocking_run
from dagster_autopilot.warehouse.resource import (
    DEFAULT_WAREHOUSE,
    WAREHOUSE_RESOURCE_KEY,
    WarehouseResource,
)


class LandingFilesComponent(ComponentModel):
    """A raw-table asset fed by CSV or JSONL files, and a sensor that requests it when files land.

    The sensor requests one run for the files that settled since its last look, and again after
    a backoff when that run fails. While a run that builds the table is queued or in progress, it
    requests nothing; the files that arrive meanwhile are requested once that run ends. The asset
    ingests every settled file not yet in the warehouse's arrivals ledger, so a file sent again, a
    repeated record, or a manual run duplicates nothing.
    Malformed rows go to `<asset>_quarantine` with a reason, and records in = records kept +
    records quarantined. A file that cannot be read at all (bad header, not UTF-8...) is rejected
    with its reason, in the quarantine (line 0) and the run's metadata, and the other files land;
    it is read again only once its content changes.

    A file lands only once it is complete. Writers can say so in one of these ways:
    - write the file, then stop: it lands once unchanged between two looks of the sensor and
      at least `settle_seconds` old;
    - write `name.csv.tmp` (or any name not ending in `.csv`/`.jsonl`, or starting with `.` or
      `_`), then rename it to `name.csv`: such names are never read;
    - with `completion_marker: .done`, write `name.csv`, then an empty `name.csv.done`;
    - with `completion_marker: _SUCCESS`, write the files, then an empty `_SUCCESS` in the folder
      (touch it again after the next batch).
    See `dagster_autopilot.pipelines.landing` for how the sensor and the ledger share the work.

    The asset writes to the `warehouse` resource (`dagster_autopilot.warehouse.resource`), which
    these definitions provide with its default: the warehouse dbt's target names.
    """

    asset_key: str
    """Key of the raw asset, and name of its warehouse table, e.g. `raw_candidates`."""

    landing_dir: str
    """Folder the files arrive in. A relative path is read from the project root. It must be a
    folder that exists (a misspelt path would otherwise wait for files forever), unless
    `create_landing_dir` is true."""

    create_landing_dir: bool = False
    """Create `landing_dir` when the definitions load, if it is missing: for a folder under a
    git-ignored data directory, which a fresh clone does not have."""

    id_column: str
    """Column that identifies a record; a row without it is quarantined as `missing_id`."""

    columns: dict[str, Literal["text", "integer"]]
    """Every column kept from a file, with its type, in table order (include `id_column`)."""

    required: list[str] = Field(default_factory=list)
    """Text columns that must be non-empty; an empty one quarantines the row as `empty_text`."""

    max_text_chars: integer(minimum=1) = 20_000
    """Longest text kept in any column; longer rows are quarantined as `oversized_text`."""

    sample_files: list[str] = Field(default_factory=list)
    """Files ingested with the first run, so a fresh project has data. Relative to the project root."""

    sensor_interval_seconds: integer(minimum=1) = 10
    """How often the sensor looks at the folder."""

    settle_seconds: integer(minimum=0) = 0
    """How long a file must stay unchanged before it lands, besides being unchanged between two
    looks of the sensor. Raise it for writers that pause mid-file, or for network shares."""

    completion_marker: Literal["none", ".done", "_SUCCESS"] = "none"
    """`none`: a file lands once settled. `.done`: only once `name.csv.done` (or `name.done`)
    exists beside `name.csv`. `_SUCCESS`: only the files written before the folder's `_SUCCESS`."""

    automation: Policy = "eager"
    """`eager`: ingest when the table is missing or this spec changes (the sensor handles
    arrivals); `lazy` or `none`: only the sensor and manual runs ingest."""

    group_name: str | None = None
    """Asset group shown in the UI."""

    description: str | None = None
    """What the raw table holds, shown in the UI."""

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
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"landing_dir: {self.landing_dir!r} ({folder}) is a file, not a folder")
        if not folder.exists():
            if not self.create_landing_dir:
                raise ValueError(
                    f"landing_dir: {self.landing_dir!r} ({folder}) does not exist; create the "
                    "folder, or set `create_landing_dir: true` to create it when the definitions load"
                )
            folder.mkdir(parents=True, exist_ok=True)
        samples = [_resolve(context.project_root, name) for name in self.sample_files]
        for index, path in enumerate(samples):
            if not path.is_file():
                raise ValueError(
                    f"sample_files[{index}]: {self.sample_files[index]!r} ({path}) is not a file"
                )
        record_spec = self.record_spec
        table = self.asset_key
        settle_seconds, marker = self.settle_seconds, self.completion_marker

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
        def raw_table(
            context: dg.AssetExecutionContext, warehouse: WarehouseResource
        ) -> dg.MaterializeResult:
            # The sensor's window; a manual or automated run takes what has been still a while.
            until = int(context.run.tags.get(landing.WINDOW_TAG, 0)) or (
                time.time_ns() - max(int(settle_seconds * 1e9), landing.CLOCK_MARGIN_NS)
            )
            files = [*samples, *landing.settled_files(folder, until, marker)]
            report = landing.ingest(warehouse.warehouse(), table, record_spec, files)
            for name, why in report.files_rejected.items():
                context.log.warning("rejected %s, not landed: %s", name, why)
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
            return dg.MaterializeResult(
                metadata={**report.metadata(), **explain_metadata(context, context.asset_key)}
            )

        @dg.sensor(
            name=f"{table}_arrivals",
            description=f"Requests {table} when files land in {self.landing_dir}.",
            asset_selection=[table],
            minimum_interval_seconds=self.sensor_interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
        def arrivals(context: dg.SensorEvaluationContext) -> dg.SensorResult:
            cursor = landing.ArrivalsCursor.parse(context.cursor)
            decision = landing.look_for_arrivals(
                table,
                folder,
                cursor,
                now_ns=landing.clock_ns(),
                settle_seconds=settle_seconds,
                marker=marker,
                last_run_failed=_last_run_failed(context.instance, cursor),
                run_in_progress=_run_in_progress(context, dg.AssetKey(table)),
            )
            if decision.run_key is None:
                return dg.SensorResult(skip_reason=decision.reason, cursor=cursor.dump())
            request = dg.RunRequest(
                run_key=decision.run_key,
                asset_selection=[dg.AssetKey(table)],
                tags={
                    landing.ARRIVALS_TAG: ",".join(decision.files)[:200],
                    landing.WINDOW_TAG: str(decision.until_ns),
                },
            )
            return dg.SensorResult(run_requests=[request], cursor=cursor.dump())

        return dg.Definitions(
            assets=[raw_table],
            sensors=[arrivals],
            resources={WAREHOUSE_RESOURCE_KEY: DEFAULT_WAREHOUSE},
        )

    def _code_version(self, samples: list[Path]) -> str:
        """Changes with the record spec or a sample file, so such an edit is seen as a code change."""
        digest = hashlib.sha256(repr(self.record_spec).encode())
        for path in samples:
            digest.update(landing.file_sha256(path).encode())
        return digest.hexdigest()[:16]


def _last_run_failed(instance: dg.DagsterInstance, cursor: landing.ArrivalsCursor) -> bool:
    """Whether the run of the sensor's last request ended without landing its files."""
    if not cursor.last_request:
        return False
    runs = instance.get_runs(
        dg.RunsFilter(tags={landing.RUN_KEY_TAG: cursor.last_request["key"]}), limit=1
    )
    failed = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    return bool(runs) and runs[0].status in failed


def _run_in_progress(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> str | None:
    """Which unfinished run builds `key`, if any: the sensor's own runs, automation and manual
    runs alike. The sensor's runs are of the shared asset job, so only the asset counts."""
    repository = context.repository_def

    def keys_of_job(name: str) -> set[dg.AssetKey]:
        if repository is None or not repository.has_job(name):
            return set()  # a job of another code location
        return set(repository.get_job(name).asset_layer.selected_asset_keys)

    blocking = find_blocking_run(context.instance, None, {key}, keys_of_job)
    return None if blocking is None else blocking[1]


def _resolve(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path
