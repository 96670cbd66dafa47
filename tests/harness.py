"""Loads the project's real definitions the way `dg` does, and drives them tick by tick.

Tests that edit SQL work on a copy of the project, so the repository is never touched.
"""

import atexit
import datetime
import functools
import importlib.util
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from dagster.components.core.component_tree import ComponentTree
from dagster.components.utils import project_paths
from dagster_dbt.dbt_manifest import read_manifest_path

from dagster_autopilot.changes.affected import change_metadata

REPO_ROOT = Path(__file__).resolve().parents[1]
# A Monday, one hour after midnight UTC: the tables' 06:00 cron tick is five hours away.
MONDAY_1AM = datetime.datetime(2026, 1, 5, 1, 0, tzinfo=datetime.UTC)
PROJECT_FILES = ("dg.toml", "pyproject.toml", "defs", "analytics_dbt", "src", "data")
_IGNORED = shutil.ignore_patterns("target", "logs", ".local_defs_state", "dbt_packages", "*.duckdb*")
_module_ids = itertools.count()


def copy_project(destination: Path) -> Path:
    """A copy of the project (YAML, dbt project, package source), without build output or state."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=_IGNORED, symlinks=True)
        else:
            shutil.copy2(source, destination / name)
    return destination


@contextmanager
def _as_dg_loads(project_root: Path):
    # `dg` commands set DAGSTER_IS_DEV_CLI, which makes dbt components refresh their state. `dg`
    # keeps that state under the defs folder of the package it imports; for a copy that is the
    # copy's own `defs/`, not the installed package's.
    previous = os.environ.get("DAGSTER_IS_DEV_CLI")
    os.environ["DAGSTER_IS_DEV_CLI"] = "1"
    original = project_paths.get_defs_module_path_for_project
    project_paths.get_defs_module_path_for_project = lambda root: Path(root) / "defs"
    try:
        yield
    finally:
        project_paths.get_defs_module_path_for_project = original
        if previous is None:
            os.environ.pop("DAGSTER_IS_DEV_CLI")
        else:
            os.environ["DAGSTER_IS_DEV_CLI"] = previous


def load_defs(project_root: Path) -> dg.Definitions:
    """The project's definitions, loaded through the same component tree `dg` builds."""
    # dagster-dbt caches manifests by path for the life of the process; a reload must see edits.
    read_manifest_path.cache_clear()
    name = f"autopilot_test_defs_{next(_module_ids)}"
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(project_root / "defs")]
    sys.modules[name] = module
    with _as_dg_loads(project_root):
        return ComponentTree.from_module(defs_module=module, project_root=project_root).build_defs()


@functools.cache
def shipped_project() -> Path:
    """A copy of the project, shared for the life of the test process by every test that reads it
    without editing it."""
    root = Path(tempfile.mkdtemp(prefix="autopilot-project-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return copy_project(root)


@functools.cache
def shipped_defs() -> dg.Definitions:
    """The definitions of `shipped_project()`, loaded at most once per test process: a load takes
    seconds, since it refreshes the dbt components' state as `dg` does."""
    root = shipped_project()
    with pytest.MonkeyPatch.context() as patch:
        # A load builds nothing; the tests that build point dbt at warehouses of their own.
        patch.setenv("AUTOPILOT_DUCKDB_PATH", str(root / "parse-only.duckdb"))
        return load_defs(root)


ANALYTICS_GROUP = "analytics"
TALENT_GROUP = "talent"
# The tag the dbt component puts on every dbt asset: seed, view, table, incremental...
MATERIALIZATION_TAG = "dagster/materialization"


@dataclass(frozen=True)
class AssetSets:
    """Asset names as the tests select them, read from loaded definitions' groups and tags."""

    everything: frozenset[str]
    analytics: frozenset[str]
    """The analytics dbt project's assets."""
    talent: frozenset[str]
    """The talent-matching pipeline: landed files -> dbt normalization -> vectors -> matches."""
    seeds: frozenset[str]
    views: frozenset[str]
    tables: frozenset[str]
    """The analytics assets by dbt materialization (their shipped policies differ by it); an
    incremental model is a table here."""

    @classmethod
    def of(cls, defs: dg.Definitions) -> "AssetSets":
        def analytics_materialized_as(*materializations: str) -> frozenset[str]:
            return assets_where(
                defs,
                lambda spec: (
                    spec.group_name == ANALYTICS_GROUP
                    and spec.tags.get(MATERIALIZATION_TAG) in materializations
                ),
            )

        return cls(
            everything=assets_where(defs, lambda spec: True),
            analytics=assets_where(defs, lambda spec: spec.group_name == ANALYTICS_GROUP),
            talent=assets_where(defs, lambda spec: spec.group_name == TALENT_GROUP),
            seeds=analytics_materialized_as("seed"),
            views=analytics_materialized_as("view"),
            tables=analytics_materialized_as("table", "incremental"),
        )


@functools.cache
def asset_sets() -> AssetSets:
    """The shipped project's asset sets; the first call loads its definitions."""
    return AssetSets.of(shipped_defs())


# The names tests import (`from harness import SEEDS`) resolve on first access, through
# `asset_sets()`, so importing the harness alone loads no definitions.
_ASSET_SET_NAMES = {
    "ALL_ASSETS": "everything",
    "ANALYTICS_ASSETS": "analytics",
    "TALENT_ASSETS": "talent",
    "SEEDS": "seeds",
    "VIEWS": "views",
    "TABLES": "tables",
}


def __getattr__(name: str) -> frozenset[str]:
    if name in _ASSET_SET_NAMES:
        return getattr(asset_sets(), _ASSET_SET_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Ticker:
    """Evaluates automation ticks, carrying the cursor, at a clock the test controls."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    now: datetime.datetime
    cursor: object | None = None
    history: list[set[str]] = field(default_factory=list)
    selection: frozenset[str] | None = None
    """The assets to evaluate; None evaluates every asset."""

    def tick(self, advance: datetime.timedelta = datetime.timedelta(seconds=30)) -> set[str]:
        """One tick, `advance` after the previous one; returns the requested asset keys."""
        self.now += advance
        result = dg.evaluate_automation_conditions(
            defs=self.defs,
            instance=self.instance,
            asset_selection=dg.AssetSelection.assets(*self.selection) if self.selection else None,
            cursor=self.cursor,
            evaluation_time=self.now,
        )
        self.cursor = result.cursor
        requested = {
            r.key.to_user_string()
            for r in result.results
            if isinstance(r.key, dg.AssetKey) and not r.true_subset.is_empty
        }
        self.history.append(requested)
        return requested

    def reload(self, project_root: Path) -> None:
        """What `dg dev` does after a file is saved: load the definitions again."""
        self.defs = load_defs(project_root)

    def simulate_run(self, keys: Iterable[str], fail: bool = False) -> dg.ExecuteInProcessResult:
        """A real run in the instance that builds `keys`, as the automation would launch it.

        The compute is a stand-in with the real keys, dependencies and code versions, so ticks can
        be tested in seconds; `test_end_to_end` builds everything with dbt for real.
        """
        stand_in = _stand_in_assets(self.defs)
        return dg.materialize(
            [stand_in],
            selection=[dg.AssetKey.from_user_string(key) for key in keys],
            instance=self.instance,
            raise_on_error=False,
            tags={"autopilot/test_fail": "true"} if fail else None,
        )

    def start_run(self, keys: Iterable[str]) -> dg.DagsterRun:
        """A run of `keys` that has started and not finished, as seen while dbt is busy."""
        selection = {dg.AssetKey.from_user_string(key) for key in keys}
        job = _stand_in_job(self.defs)
        return self.instance.create_run_for_job(
            job_def=job.get_subset(asset_selection=selection),
            asset_selection=frozenset(selection),
            status=dg.DagsterRunStatus.STARTED,
        )

    def cancel_run(self, run: dg.DagsterRun) -> None:
        """Ends a started run without materializing anything, as a cancel from the UI would."""
        self.instance.report_run_canceled(run)


def _stand_in_assets(defs: dg.Definitions) -> dg.AssetsDefinition:
    specs = [
        spec.replace_attributes(automation_condition=None)
        for assets in defs.assets
        if isinstance(assets, dg.AssetsDefinition)
        for spec in assets.specs
    ]

    order = _parents_first(specs)

    @dg.multi_asset(specs=specs, can_subset=True, name="stand_in_for_real_compute")
    def stand_in(context: dg.AssetExecutionContext):
        if context.run.tags.get("autopilot/test_fail") == "true":
            raise RuntimeError("simulated failure")
        for key in order:
            if key in context.selected_asset_keys:
                # What the dbt component records on each materialization (changed columns).
                spec = context.assets_def.specs_by_key[key]
                metadata = change_metadata(context.instance, key, spec)
                yield dg.MaterializeResult(asset_key=key, metadata=metadata)

    return stand_in


def _parents_first(specs: list[dg.AssetSpec]) -> list[dg.AssetKey]:
    """The specs' keys with every asset after its parents (a multi-asset must yield them so)."""
    parents = {spec.key: {dep.asset_key for dep in spec.deps} for spec in specs}
    order: list[dg.AssetKey] = []

    def visit(key: dg.AssetKey) -> None:
        if key in parents and key not in order:
            for parent in sorted(parents[key]):
                visit(parent)
            order.append(key)

    for key in sorted(parents):
        visit(key)
    return order


def _stand_in_job(defs: dg.Definitions) -> dg.JobDefinition:
    return dg.Definitions(
        assets=[_stand_in_assets(defs)], jobs=[dg.define_asset_job("stand_in_job")]
    ).resolve_job_def("stand_in_job")


def build_everything_with_dbt(defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    """Materializes every asset with dbt for real; every asset builds and every dbt test passes."""
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            assets, resources=defs.resources, instance=instance, raise_on_error=False
        )
    assert result.success, [
        event.message for event in result.all_events if event.is_failure or event.is_step_failure
    ]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == AssetSets.of(defs).everything
    checks = result.get_asset_check_evaluations()
    declared = {key for definition in assets for key in definition.check_keys}
    assert len(declared) > 20, "the dbt tests surface as asset checks"
    assert {c.asset_check_key for c in checks} == declared
    assert [c.check_name for c in checks if not c.passed] == []
    return result


def run_at_clock(ticker: Ticker, keys: Iterable[str], fail: bool = False) -> dg.ExecuteInProcessResult:
    """`ticker.simulate_run`, with Dagster's clock frozen at the ticker's: the run's events and end
    time fall at the simulated time, as the backoff and TTL guardrails need."""
    from dagster._core.test_utils import freeze_time

    with freeze_time(ticker.now):
        return ticker.simulate_run(keys, fail=fail)


@dataclass
class AnalyticsTicker(Ticker):
    """A `Ticker` that evaluates only the analytics dbt project's assets of the definitions it
    ticks, so tests about it do not depend on what other components of the project automate."""

    def __post_init__(self) -> None:
        if self.selection is None:
            self.selection = AssetSets.of(self.defs).analytics


def start_dg_check_defs(root: Path) -> subprocess.Popen:
    """Starts the real `dg check defs` of this environment on the copy at `root`, as CI would."""
    env = {
        **os.environ,
        "AUTOPILOT_DUCKDB_PATH": str(root / "w.duckdb"),
        "NO_COLOR": "1",
        # The copy's own package first, so its `defs` symlink leads to the copy's YAML.
        "PYTHONPATH": str(root / "src"),
    }
    env.pop("DAGSTER_IS_DEV_CLI", None)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@dataclass
class SensorTicker(Ticker):
    """A `Ticker` that evaluates the project's shipped automation sensor as the daemon does:
    `SensorDefinition.evaluate_tick` on a sensor context, the sensor's cursor carried from tick
    to tick, with Dagster's clock frozen at the ticker's."""

    sensor: dg.SensorDefinition | None = None
    requests: list[dg.RunRequest] = field(default_factory=list)
    """The run requests of the latest tick, with their tags."""

    def tick(self, advance: datetime.timedelta = datetime.timedelta(seconds=30)) -> set[str]:
        from dagster._core.test_utils import freeze_time

        self.now += advance
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            repository_def=self.defs.get_repository_def(),
        )
        with freeze_time(self.now):
            data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        self.requests = list(data.run_requests)
        requested = {
            key.to_user_string() for request in data.run_requests for key in request.asset_selection
        }
        self.history.append(requested)
        return requested

    def run_requested(self, keys: Iterable[str]) -> dg.ExecuteInProcessResult:
        """Builds `keys` as the daemon would launch the sensor's request, at the ticker's clock."""
        return run_at_clock(self, keys)


def assets_where(defs: dg.Definitions, predicate) -> frozenset[str]:
    """The keys of the assets whose spec satisfies `predicate`, read from loaded definitions."""
    return frozenset(
        spec.key.to_user_string()
        for assets in defs.assets
        if isinstance(assets, dg.AssetsDefinition)
        for spec in assets.specs
        if predicate(spec)
    )


def with_policies(defs: dg.Definitions, policies: dict[str, dict]) -> dg.Definitions:
    """`defs`'s assets, with `policies` (YAML form) put on the named assets."""
    from dagster_autopilot.automation.apply import apply_policy, policy_of

    def override(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = policies.get(spec.key.to_user_string())
        if policy is None:
            return spec
        # Layered on the asset's own policy, as a rule or dbt meta would be.
        base = policy_of(spec.metadata).model_dump(exclude_defaults=True)
        return apply_policy(spec, {**base, **policy})

    assets = [
        a.map_asset_specs(override) if isinstance(a, dg.AssetsDefinition) else a
        for a in defs.assets or []
    ]
    return dg.Definitions(assets=assets, resources=defs.resources)


def finish_run(ticker: Ticker, run: dg.DagsterRun, key: str, code_version: str) -> None:
    """Ends a started run as its step would: one materialization of `key` stamped with
    `code_version`, then the run's success."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData

    materialization = dg.AssetMaterialization(key, tags={"dagster/code_version": code_version})
    for event in (
        DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name=run.job_name,
            event_specific_data=StepMaterializationData(materialization),
        ),
        DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name),
    ):
        ticker.instance.report_dagster_event(event, run_id=run.run_id)


# --- The landing sensors, ticked with a clock the test moves: `tests/test_landing.py`, rerun on
# PostgreSQL by `tests/production/test_landing_postgres.py`. A test module imports the fixtures it
# uses by their function names, `<fixture>_fixture`. ---

LANDING_TABLE = "raw_candidates"


class Clock:
    """The sensor's clock: the real time, plus what the test has moved it on by."""

    def __init__(self):
        self.offset_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset_ns

    def advance(self, seconds: float) -> None:
        self.offset_ns += int(seconds * 1e9)


@contextmanager
def landed_files_removed(folder: Path):
    """The project copy is shared: leave its landing folder as it was found."""
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_the_file_clock_to_pass(moment_ns: int, probe: Path) -> None:
    """Waits until a file written now is stamped after `moment_ns`: file clocks are coarser than
    the system clock, and a file written after a look must not seem older than the look."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        probe.write_bytes(b"")
        stat = probe.stat()
        if max(stat.st_mtime_ns, stat.st_ctime_ns) > moment_ns:
            return
        time.sleep(0.001)
    raise AssertionError("the file clock did not move for 5 s")


class Arrivals:
    """Ticks the real arrivals sensor of `raw_candidates` and runs what it requests."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, clock: Clock, probe: Path):
        self.defs, self.instance, self.clock, self.probe = defs, instance, clock, probe
        self.sensor = defs.get_sensor_def(f"{LANDING_TABLE}_arrivals")
        self.cursor: str | None = None
        self.skip_reason: str | None = None

    def tick(self, advance: float = 0.0) -> list[dg.RunRequest]:
        self.clock.advance(advance)
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs
        )
        result = self.sensor.evaluate_tick(context)
        self.cursor, self.skip_reason = result.cursor, result.skip_message
        wait_for_the_file_clock_to_pass(time.time_ns(), self.probe)
        return list(result.run_requests)

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """The run the daemon would launch for `request`: of the asset job, selecting the table."""
        job = self.defs.resolve_implicit_global_asset_job_def()
        return job.execute_in_process(
            instance=self.instance,
            asset_selection=list(request.asset_selection),
            tags={**request.tags, "dagster/run_key": request.run_key},
            raise_on_error=False,
        )


@pytest.fixture(name="clock")
def clock_fixture(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The sensors' clock, moved by the test; no margin for coarse file clocks, as the ticks
    wait for the file clock themselves."""
    from dagster_autopilot.pipelines import landing

    clock = Clock()
    monkeypatch.setattr(landing, "clock_ns", clock, raising=False)
    monkeypatch.setattr(landing, "CLOCK_MARGIN_NS", 0, raising=False)
    return clock


@pytest.fixture(name="arrivals")
def arrivals_fixture(project_defs, project_root: Path, tmp_path: Path, clock: Clock):
    """The project's sensor of `raw_candidates`, with a clock the test moves."""
    folder = project_root / ".data" / "landing" / "candidates"
    probe = project_root / ".data" / f"clock-probe-{tmp_path.name}"
    probe.parent.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test() as instance, landed_files_removed(folder):
        yield Arrivals(project_defs, instance, clock, probe), folder
    probe.unlink(missing_ok=True)


@pytest.fixture(name="configured_arrivals")
def configured_arrivals_fixture(tmp_path: Path, clock: Clock):
    """Builds `raw_candidates` and its sensor with the given fields of `LandingFilesComponent`
    (`settle_seconds`, `completion_marker`...), landing from a folder of the test's own."""
    from dagster_autopilot.components.landing_files import LandingFilesComponent
    from dagster_autopilot.samples.talent import CANDIDATE_SPEC

    folder = tmp_path / "landing"
    folder.mkdir(exist_ok=True)

    def build(**fields) -> Arrivals:
        component = LandingFilesComponent(
            asset_key=LANDING_TABLE,
            landing_dir=str(folder),
            id_column=CANDIDATE_SPEC.id_column,
            columns=dict(CANDIDATE_SPEC.columns),
            required=list(CANDIDATE_SPEC.required),
            **fields,
        )
        defs = component.build_defs(dg.ComponentTree.for_test().load_context)
        return Arrivals(defs, instance, clock, tmp_path / "clock-probe")

    with dg.instance_for_test() as instance:
        yield build, folder
