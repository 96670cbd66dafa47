"""One simulated hour of automation ticks: the library's sensors against the same hour under eager().

    uv run python benchmarks/bench_simulated_hour.py --models 1000 --workdir DIR

Generates (or, with `--workdir`, reuses) and loads the `ours` project as `bench_tick.py` does, and
splits its automated assets into `AutopilotAutomationSensor`s with the library's own split
(`sensor_split.split_into_sensors`, at most 500 assets each), as `components/automation_sensor.py`
does; each sensor keeps the default `full_evaluation_every` (10 minutes).

Three variants tick together, 5 s apart, from Monday 05:30 UTC for `--ticks` ticks (720: one
hour, crossing the tables' `0 6 * * *` cron at 06:00):

- ours: the sensors, incremental (a quiet tick is skipped, a busy tick evaluates only what its
  events can affect, every asset at least every 10 minutes and at every time boundary). After each
  tick what it requested is built in one run of a stand-in multi-asset at the simulated clock, as
  the daemon would launch it.
- full: the same sensors with `incremental=False` ("today's evaluation"), each with its own cursor,
  evaluated on ours' instance at the same clock (an evaluation writes nothing, so both see the same
  history); its requests are compared with ours tick by tick, and the script exits 1 at the end if
  any differ.
- eager: the same graph with every condition `AutomationCondition.eager()`, evaluated by
  `dg.evaluate_automation_conditions` in its own instance; its requests are built there.

Each instance starts with every asset materialized once (runless, parents first, at 05:00) and
settles (ticks and builds until nothing is requested) before the hour. `--seed-updates` seeds (a
different one each time) are updated by a stand-in run in both instances, spread evenly over the
hour. After the hour, `--busy-repeats` busy ticks: 10 seeds updated at once, then one tick of each
variant, then ticks until both settle.

At N=5,000 a stand-in run costs about 0.1 s per asset built, and eager() requests thousands at
once: `--runless-builds` instead records what a tick requested as runless materializations, parents
first, at the simulated clock (about 0.01 s per asset); no run is then ever in progress or failed.

CPU is `time.process_time()` around each variant's evaluation (never the runs). A full evaluation
or an eager() tick costs seconds at N=1,000, so two options keep a long hour feasible, and the
output says what was measured and what was estimated:

- `--eager-sample K`: eager() is evaluated on every tick where its instance has a new event since
  its previous evaluation, its previous evaluation requested something, or a time boundary (the
  cron tick) falls, and on every K-th other tick. eager() depends on events only, so an
  unevaluated tick requests nothing; its CPU is estimated as the median of the measured quiet
  eager() ticks. K=1 evaluates every tick.
- `--full-sample K`: the full evaluation runs on every tick ours evaluated (partially or fully),
  and on every K-th tick ours skipped; `--no-full` skips the comparison.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from bench_tick import assets_of, load_project_defs, materialize, stand_in_for, with_eager
from dagster._core.test_utils import freeze_time
from generate_dbt_project import write_project

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor, evaluate_sensor_tick
from dagster_autopilot.automation.sensor_split import parents_of, split_into_sensors
from dagster_autopilot.components.automation_sensor import sensor_names

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

HOUR_TARGET = 0.1
BUSY_TARGET = 0.5
SETUP = datetime.datetime(2026, 1, 5, 5, 0, tzinfo=datetime.UTC)  # a Monday
START = datetime.datetime(2026, 1, 5, 5, 30, tzinfo=datetime.UTC)
STEP = datetime.timedelta(seconds=5)
CRON_TICKS = [datetime.datetime(2026, 1, 5, 6, 0, tzinfo=datetime.UTC)]  # the tables' 0 6 * * *
SETTLE_TICKS = 20
BUSY_SEEDS = 10
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


class _TickLines(logging.Handler):
    """Keeps the sensor's `autopilot tick` log lines (evaluated and targeted counts)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("autopilot tick "):
            self.records.append(json.loads(message[len("autopilot tick ") :]))


@dataclass
class SensorTick:
    """One tick of the library's sensors: CPU, requests per sensor, and what each sensor did."""

    cpu: float
    wall: float
    requests: dict[str, list[list[str]]]
    kinds: list[str]  # per sensor: skipped, partial or full
    evaluated: int

    @property
    def keys(self) -> set[str]:
        return {key for runs in self.requests.values() for run in runs for key in run}


@dataclass
class Sensors:
    """The library's sensors over one instance, each with its cursor."""

    repository: dg.RepositoryDefinition
    sensors: list[AutopilotAutomationSensor]
    instance: dg.DagsterInstance
    incremental: bool
    cursors: dict[str, str | None] = field(default_factory=dict)

    def tick(self, now: datetime.datetime) -> SensorTick:
        cpu = wall = 0.0
        requests, kinds, evaluated = {}, [], 0
        for sensor in self.sensors:
            context = dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursors.get(sensor.name),
                repository_def=self.repository,
            )
            lines = _TickLines()
            context.log.addHandler(lines)
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            result, _ = evaluate_sensor_tick(
                sensor, context, evaluation_time=now, incremental=self.incremental
            )
            cpu += time.process_time() - start_cpu
            wall += time.perf_counter() - start_wall
            self.cursors[sensor.name] = result.cursor
            requests[sensor.name] = sorted(
                sorted(key.to_user_string() for key in request.asset_selection or [])
                for request in result.run_requests
            )
            if result.skip_reason is not None:
                kinds.append("skipped")
            else:
                line = lines.records[-1]
                evaluated += line["evaluated"]
                kinds.append("full" if line["evaluated"] >= line["targeted"] else "partial")
        return SensorTick(cpu, wall, requests, kinds, evaluated)


@dataclass
class Eager:
    """The same graph under eager(), evaluated by `dg.evaluate_automation_conditions`."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: object | None = None
    seen_storage_id: int | None = None
    last_requested: bool = True

    def is_quiet(self) -> bool:
        """Nothing stored since the previous evaluation, which requested nothing: eager() depends
        on events only, so an evaluation now would request nothing."""
        return (
            not self.last_requested
            and self.instance.event_log_storage.get_maximum_record_id() == self.seen_storage_id
        )

    def tick(self, now: datetime.datetime) -> tuple[float, float, set[str]]:
        self.seen_storage_id = self.instance.event_log_storage.get_maximum_record_id()
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=now
        )
        cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
        self.cursor = result.cursor
        keys = {
            r.key.to_user_string()
            for r in result.results
            if isinstance(r.key, dg.AssetKey) and not r.true_subset.is_empty
        }
        self.last_requested = bool(keys)
        return cpu, wall, keys


@dataclass
class Row:
    """One tick of the hour (or of a phase around it), as reported."""

    phase: str
    index: int
    at: datetime.datetime
    event: str
    ours: SensorTick
    full: SensorTick | None
    eager_cpu: float | None  # None: not evaluated (estimated)
    eager_wall: float | None
    eager_keys: set[str] | None
    eager_quiet: bool  # whether eager() had nothing new on this tick

    def line(self) -> str:
        kinds = self.ours.kinds
        kind = (
            "skipped"
            if all(k == "skipped" for k in kinds)
            else ("full" if "full" in kinds else "partial")
        )
        full = "-" if self.full is None else str(len(self.full.keys))
        eager = "-" if self.eager_keys is None else str(len(self.eager_keys))
        eager_cpu = "-" if self.eager_cpu is None else f"{self.eager_cpu:.3f}"
        full_cpu = "-" if self.full is None else f"{self.full.cpu:.3f}"
        return (
            f"| {self.phase} | {self.index} | {self.at:%H:%M:%S} | {self.event or ''} | {kind} "
            f"({','.join(k[0] for k in kinds)}) | {self.ours.evaluated} | {len(self.ours.keys)} | "
            f"{full} | {eager} | {self.ours.cpu:.3f} | {full_cpu} | {eager_cpu} |"
        )


HEADER = (
    "| phase | tick | time | event | ours: tick (per sensor: s/p/f) | ours: assets evaluated | "
    "ours requested | full requested | eager requested | ours CPU s | full CPU s | eager CPU s |\n"
    "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="synthetic dbt models")
    parser.add_argument("--ticks", type=int, default=720, help="ticks of the hour, 5 s apart")
    parser.add_argument("--seed-updates", type=int, default=12, help="seed updates in the hour")
    parser.add_argument("--busy-repeats", type=int, default=2, help="busy ticks after the hour")
    parser.add_argument("--eager-sample", type=int, default=1, help="see above; 1: every tick")
    parser.add_argument("--full-sample", type=int, default=1, help="see above; 1: every tick")
    parser.add_argument("--no-full", action="store_true", help="skip the full evaluation")
    parser.add_argument(
        "--runless-builds",
        action="store_true",
        help="record what a tick requested as runless materializations instead of a stand-in run",
    )
    parser.add_argument("--requests-out", type=Path, help="write the tick-by-tick table here")
    parser.add_argument(
        "--workdir", type=Path, help="where to generate; a project already there is reused"
    )
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_simulated_hour_"))
    project = workdir / f"ours_{args.models}"
    if not (project / "dg.toml").exists():
        write_project(project, args.models, "ours")
    start = time.perf_counter()
    ours_assets = assets_of(load_project_defs(project))
    print(f"loaded {project} in {time.perf_counter() - start:.1f}s", flush=True)

    specs = [spec for a in ours_assets for spec in a.specs]
    automated = [spec.key for spec in specs if spec.automation_condition is not None]
    groups = split_into_sensors(parents_of(specs), automated, internals.MAX_ASSETS_PER_USER_CODE_SENSOR)
    names = sensor_names("autopilot_automation_sensor", len(groups))
    sensors = [
        AutopilotAutomationSensor(name, target=dg.AssetSelection.assets(*group))
        for name, group in zip(names, groups, strict=True)
    ]
    graph = dg.Definitions(assets=ours_assets).resolve_asset_graph()
    order = list(graph.toposorted_asset_keys)
    seeds = sorted(
        (k for k in order if graph.get(k).tags.get("dagster/materialization") == "seed"),
        key=lambda k: k.to_user_string(),
    )
    print(
        f"{len(order)} assets, {len(automated)} automated, in {len(sensors)} sensors "
        f"({', '.join(str(len(g)) for g in groups)}); {len(seeds)} seeds",
        flush=True,
    )
    stand_in = stand_in_for(ours_assets, order)

    def build(instance: dg.DagsterInstance, keys, at: datetime.datetime) -> None:
        if keys and args.runless_builds:
            with freeze_time(at):
                materialize(instance, [key for key in order if key.to_user_string() in keys])
        elif keys:
            with freeze_time(at):
                dg.materialize(
                    [stand_in],
                    selection=sorted(dg.AssetKey.from_user_string(k) for k in keys),
                    instance=instance,
                    run_config=QUIET_LOGS,
                )

    update_ticks = {
        args.ticks * (2 * i + 1) // (2 * args.seed_updates): i for i in range(args.seed_updates)
    }
    rows: list[Row] = []
    differences: list[str] = []
    with dg.instance_for_test() as ours_instance, dg.instance_for_test() as eager_instance:
        repository = dg.Definitions(assets=ours_assets, sensors=sensors).get_repository_def()
        ours = Sensors(repository, sensors, ours_instance, incremental=True)
        full = None if args.no_full else Sensors(repository, sensors, ours_instance, False)
        eager = Eager(dg.Definitions(assets=with_eager(ours_assets)), eager_instance)
        for instance in (ours_instance, eager_instance):
            with freeze_time(SETUP):
                materialize(instance, order)

        def tick(phase: str, index: int, now: datetime.datetime, event: str, must: bool = False) -> Row:
            """One tick of every variant at `now`, then builds what each requested."""
            ours_tick = ours.tick(now)
            full_tick = None
            evaluated = any(kind != "skipped" for kind in ours_tick.kinds)
            if full is not None and (must or evaluated or index % args.full_sample == 0):
                full_tick = full.tick(now)
                if full_tick.requests != ours_tick.requests:
                    differences.append(f"{phase} tick {index} at {now.isoformat()}")
                    print(
                        f"DIFFERENCE at {phase} tick {index} ({now.isoformat()}): "
                        f"ours {ours_tick.requests}, full {full_tick.requests}",
                        flush=True,
                    )
            quiet = eager.is_quiet()
            eager_cpu = eager_wall = eager_keys = None
            if must or not quiet or index % args.eager_sample == 0:
                eager_cpu, eager_wall, eager_keys = eager.tick(now)
            row = Row(
                phase,
                index,
                now,
                event,
                ours_tick,
                full_tick,
                eager_cpu,
                eager_wall,
                eager_keys,
                quiet,
            )
            rows.append(row)
            build(ours_instance, ours_tick.keys, now)
            build(eager_instance, eager_keys or set(), now)
            if event or ours_tick.keys or eager_keys or full_tick is not None or index % 60 == 0:
                print(row.line(), flush=True)
            return row

        def settle(phase: str, now: datetime.datetime) -> datetime.datetime:
            for number in range(1, SETTLE_TICKS + 1):
                now += STEP
                row = tick(phase, number, now, "", must=True)
                if not row.ours.keys and not row.eager_keys:
                    return now
            raise RuntimeError(f"{phase}: still requesting after {SETTLE_TICKS} ticks")

        print(HEADER, flush=True)
        settle("settle", SETUP)
        started = time.perf_counter()
        for index in range(1, args.ticks + 1):
            now = START + index * STEP
            event = []
            if index in update_ticks:
                seed = seeds[update_ticks[index] % len(seeds)]
                for instance in (ours_instance, eager_instance):
                    build(instance, {seed.to_user_string()}, now - datetime.timedelta(seconds=1))
                event.append(f"seed {seed.to_user_string()} updated")
            cron = any(now - STEP < moment <= now for moment in CRON_TICKS)
            if cron:
                event.append("cron 0 6 * * *")
            tick("hour", index, now, "; ".join(event), must=cron)
            if index % 60 == 0:
                loads.append(os.getloadavg()[0])
        hour_seconds = time.perf_counter() - started
        # The hour's figures first, in case the busy ticks run long.
        report(args, rows, differences, hour_seconds, loads, len(sensors))
        now = START + args.ticks * STEP
        for repeat in range(args.busy_repeats):
            updated = [
                seeds[(args.seed_updates + repeat * BUSY_SEEDS + i) % len(seeds)]
                for i in range(BUSY_SEEDS)
            ]
            now += STEP
            names = {seed.to_user_string() for seed in updated}
            for instance in (ours_instance, eager_instance):
                build(instance, names, now - datetime.timedelta(seconds=1))
            tick(f"busy {repeat + 1}", 0, now, f"{len(set(updated))} seeds updated", must=True)
            now = settle(f"busy {repeat + 1}", now)
        loads.append(os.getloadavg()[0])

    if requests_out := args.requests_out:
        requests_out.write_text(
            f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}\n\n"
            + HEADER
            + "\n"
            + "\n".join(row.line() for row in rows)
            + "\n"
        )
        print(f"tick-by-tick table: {requests_out}")
    report(args, rows, differences, hour_seconds, loads, len(sensors))
    if differences:
        print(f"{len(differences)} ticks where ours and the full evaluation differ: {differences}")
        sys.exit(1)


def report(args, rows: list[Row], differences, hour_seconds: float, loads, n_sensors: int) -> None:
    """The summary: CPU per simulated hour, busy ticks, tick kinds, equivalence."""
    hour = [row for row in rows if row.phase == "hour"]
    measured = [row for row in hour if row.eager_cpu is not None]
    quiet_measured = [row.eager_cpu for row in measured if row.eager_quiet]
    sample = quiet_measured or [row.eager_cpu for row in measured]
    # A short hour may measure no eager() tick at all: nothing to estimate the others from.
    estimate = statistics.median(sample) if sample else float("nan")
    unmeasured = len(hour) - len(measured)
    ours_cpu = sum(row.ours.cpu for row in hour)
    eager_cpu = sum(row.eager_cpu for row in measured) + unmeasured * estimate
    sensor_kinds = [kind for row in hour for kind in row.ours.kinds]
    tick_kinds = {
        "every sensor skipped": sum(all(k == "skipped" for k in row.ours.kinds) for row in hour),
        "a full evaluation of some sensor": sum("full" in row.ours.kinds for row in hour),
    }
    tick_kinds["partial, none full"] = len(hour) - sum(tick_kinds.values())
    compared = [row for row in rows if row.full is not None]
    busy = [row for row in rows if row.phase.startswith("busy") and row.index == 0]

    print()
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(
        f"{len(hour)} ticks 5 s apart from {START:%a %H:%M} UTC, seed updates: {args.seed_updates}, "
        f"{n_sensors} sensors; the hour took {hour_seconds:.0f} s wall-clock; load average "
        f"(1 min) {min(loads):.1f}-{max(loads):.1f}"
    )
    print(
        f"ours, per sensor tick: {sensor_kinds.count('skipped')} skipped, "
        f"{sensor_kinds.count('partial')} partial, {sensor_kinds.count('full')} full; per tick: "
        + ", ".join(f"{count} {kind}" for kind, count in tick_kinds.items())
    )
    print(
        f"eager(): {len(measured)} ticks of the hour measured ({len(quiet_measured)} of them "
        f"quiet), {unmeasured} quiet ticks estimated at the median of the measured quiet ones, "
        f"{estimate:.3f} s"
        + (" (none measured: the median of all measured)" if not quiet_measured else "")
    )
    if args.no_full:
        print("equivalence with the full evaluation: not checked (--no-full)")
    else:
        skipped_compared = sum(
            all(k == "skipped" for k in row.ours.kinds) for row in compared if row.phase == "hour"
        )
        print(
            f"equivalence with the full evaluation: {len(compared)} ticks compared "
            f"({skipped_compared} of the hour's skipped ticks among them), "
            + (f"{len(differences)} DIFFERENT: {differences}" if differences else "the same requests")
        )
    print()
    n = args.models
    print("| measurement | ours | eager() | ratio | target | notes |")
    print("|---|---:|---:|---:|---|---|")
    ratio = ours_cpu / eager_cpu
    print(
        f"| N={n}: CPU per simulated hour ({len(hour)} ticks) | {ours_cpu:.2f} s | "
        f"{eager_cpu:.1f} s | {ratio:.4f}x | <= {HOUR_TARGET}x "
        f"{'ok' if ratio <= HOUR_TARGET else 'MISSED'} | eager(): {len(measured)} ticks measured "
        f"({sum(r.eager_cpu for r in measured):.1f} s), {unmeasured} estimated |"
    )
    for row in busy:
        ratio = row.ours.cpu / row.eager_cpu
        print(
            f"| N={n}: busy tick, {row.phase} ({row.event}; ours "
            f"{'/'.join(row.ours.kinds)}, {row.ours.evaluated} assets evaluated) | "
            f"{row.ours.cpu:.2f} s CPU ({row.ours.wall:.2f} s wall) | {row.eager_cpu:.2f} s CPU "
            f"({row.eager_wall:.2f} s wall) | {ratio:.3f}x | <= {BUSY_TARGET}x "
            f"{'ok' if ratio <= BUSY_TARGET else 'MISSED'} | requested: ours "
            f"{len(row.ours.keys)}, eager {len(row.eager_keys or ())}"
            + ("" if row.full is None else f", full {len(row.full.keys)} ({row.full.cpu:.2f} s CPU)")
            + " |"
        )
    print()
    print("Ticks of the hour where any variant requested something, or an event happened:")
    print(HEADER)
    for row in hour:
        if row.event or row.ours.keys or row.eager_keys or (row.full and row.full.keys):
            print(row.line())


if __name__ == "__main__":
    main()
