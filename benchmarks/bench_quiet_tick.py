"""Times a quiet automation tick of the library's sensor against the same tick under eager().

    uv run python benchmarks/bench_quiet_tick.py --models 1000 --repeats 5

Generates and loads the `ours` project as `bench_tick.py` does, and puts its assets in
`AutopilotAutomationSensor`s of at most 500 assets each (the user-code sensor limit), in
topological order. The eager() variant is the same graph with every condition replaced by
`AutomationCondition.eager()`, evaluated with `dg.evaluate_automation_conditions` as in
`bench_tick.py`. Each variant gets its own on-disk test instance in which every asset has been
materialized once (runless, parents first).

Both variants tick 30 s apart from Monday 07:00 UTC (past the tables' 06:00 cron), building what
each tick requests in one run of a stand-in multi-asset, until a tick requests nothing. Then
`--repeats` ticks with nothing new are timed per variant, alternating: ours is the sum over its
sensors of `SensorDefinition.evaluate_tick`, each with its own cursor (a quiet tick skips the
evaluation); eager() evaluates every asset. A third row times the same quiet tick of our sensors
with quiet ticks switched off (a full evaluation), against the same eager() ticks.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from bench_tick import assets_of, load_project_defs, materialize, stand_in_for, with_eager
from generate_dbt_project import write_project

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor, evaluate_sensor_tick

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

QUIET_TARGET = 0.05
START = datetime.datetime(2026, 1, 5, 7, 0, tzinfo=datetime.UTC)
STEP = datetime.timedelta(seconds=30)
SETTLE_TICKS = 8


@dataclass
class OurSensors:
    """The library's sensors over the project, each with its cursor."""

    repository: dg.RepositoryDefinition
    sensors: list[AutopilotAutomationSensor]
    instance: dg.DagsterInstance
    now: datetime.datetime = START
    cursors: dict[str, str | None] = field(default_factory=dict)

    def tick(self, incremental: bool = True, advance: bool = True) -> tuple[float, list, int]:
        """One tick of every sensor; returns its seconds, the requested keys and the skipped
        sensors. `advance=False` evaluates the latest tick again without keeping its cursors."""
        if advance:
            self.now += STEP
        requested, skipped, seconds = [], 0, 0.0
        for sensor in self.sensors:
            context = dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursors.get(sensor.name),
                repository_def=self.repository,
            )
            start = time.perf_counter()
            result, _ = evaluate_sensor_tick(
                sensor, context, evaluation_time=self.now, incremental=incremental
            )
            seconds += time.perf_counter() - start
            skipped += result.skip_reason is not None
            requested += [key for request in result.run_requests for key in request.asset_selection]
            if advance:
                self.cursors[sensor.name] = result.cursor
        return seconds, requested, skipped


@dataclass
class Eager:
    """The same graph under eager(), evaluated by `dg.evaluate_automation_conditions`."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    now: datetime.datetime = START
    cursor: object | None = None

    def tick(self) -> tuple[float, list]:
        self.now += STEP
        start = time.perf_counter()
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=self.now
        )
        seconds = time.perf_counter() - start
        self.cursor = result.cursor
        keys = [r.key for r in result.results if not r.true_subset.is_empty]
        return seconds, [k for k in keys if isinstance(k, dg.AssetKey)]


def settle(name: str, tick, stand_in, instance: dg.DagsterInstance) -> None:
    """Ticks, building what each tick requests, until a tick requests nothing."""
    for number in range(1, SETTLE_TICKS + 1):
        seconds, requested = tick()[:2]
        print(f"  {name} settling tick {number}: {seconds:.2f}s, {len(requested)} requested", flush=True)
        if not requested:
            return
        dg.materialize(
            [stand_in],
            selection=sorted(set(requested)),
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
    raise RuntimeError(f"{name} still requests after {SETTLE_TICKS} ticks")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="synthetic dbt models")
    parser.add_argument("--repeats", type=int, default=5, help="timed quiet ticks per variant")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_quiet_tick_"))
    project = write_project(workdir / f"ours_{args.models}", args.models, "ours")
    start = time.perf_counter()
    ours_assets = assets_of(load_project_defs(project))
    print(f"loaded {project} in {time.perf_counter() - start:.1f}s", flush=True)

    graph = dg.Definitions(assets=ours_assets).resolve_asset_graph()
    order = list(graph.toposorted_asset_keys)
    limit = internals.MAX_ASSETS_PER_USER_CODE_SENSOR
    sensors = [
        AutopilotAutomationSensor(
            f"autopilot_automation_sensor_{i // limit}",
            target=dg.AssetSelection.assets(*order[i : i + limit]),
        )
        for i in range(0, len(order), limit)
    ]
    print(f"{len(order)} assets in {len(sensors)} sensors", flush=True)
    stand_in = stand_in_for(ours_assets, order)

    quiet = {"ours": [], "eager": [], "ours, quiet ticks off": []}
    with dg.instance_for_test() as ours_instance, dg.instance_for_test() as eager_instance:
        repository = dg.Definitions(assets=ours_assets, sensors=sensors).get_repository_def()
        ours = OurSensors(repository, sensors, ours_instance)
        eager = Eager(dg.Definitions(assets=with_eager(ours_assets)), eager_instance)
        materialize(ours_instance, order)
        materialize(eager_instance, order)
        settle("ours", ours.tick, stand_in, ours_instance)
        settle("eager", eager.tick, stand_in, eager_instance)
        for repeat in range(args.repeats):
            seconds, requested, skipped = ours.tick()
            assert not requested, requested
            quiet["ours"].append(seconds)
            full_seconds, full_requested, _ = ours.tick(incremental=False, advance=False)
            assert not full_requested, full_requested
            quiet["ours, quiet ticks off"].append(full_seconds)
            eager_seconds, eager_requested = eager.tick()
            assert not eager_requested, eager_requested
            quiet["eager"].append(eager_seconds)
            print(
                f"  [{repeat + 1}/{args.repeats}] ours {seconds:.4f}s ({skipped}/{len(sensors)} "
                f"sensors skipped), ours with quiet ticks off {full_seconds:.2f}s, "
                f"eager {eager_seconds:.2f}s",
                flush=True,
            )

    eager_median = statistics.median(quiet["eager"])
    print()
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print("| measurement | ours median s | eager() median s | ratio | target | raw s |")
    print("|---|---:|---:|---:|---:|---|")
    for label, target in (("ours", QUIET_TARGET), ("ours, quiet ticks off", None)):
        median = statistics.median(quiet[label])
        verdict = "-" if target is None else ("ok" if median / eager_median <= target else "MISSED")
        raw = "; ".join(
            f"{name}: " + ", ".join(f"{t:.4f}" for t in quiet[name]) for name in (label, "eager")
        )
        print(
            f"| N={args.models}: quiet tick, {label} | {median:.4f} | {eager_median:.2f} | "
            f"{median / eager_median:.4f}x | {f'<= {target}x {verdict}' if target else '-'} | {raw} |"
        )


if __name__ == "__main__":
    main()
