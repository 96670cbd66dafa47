"""Checks that incremental ticks change no request: a simulated day on a generated project, with
random updates, failures, runs, cancels and edits, ticked by the library's sensor (quiet ticks
skipped, busy ticks evaluating only what their events can affect) and by the same sensor
evaluating every asset on every tick, compared tick by tick. Exits 1 at the first difference.

    uv run python benchmarks/equivalence_quiet_tick.py --models 300 --hours 24

Not a timing: the equivalence check, which `tests/test_equivalence_day.py` runs on 300 models over
one day. Both sensors evaluate the same assets on one instance, each with its own cursor; an
evaluation writes nothing, so both see the same history.
Beside the generated `table: {cron: "0 6 * * *"}` policy, a tenth of the models each get a TTL,
quiet hours, or a short backoff. Ticks are 30 s to 1 h apart; after each, what the tick requested
runs (one run in ten fails), and now and then a seed is updated, a model's run fails or starts, a
started run is cancelled, or a model's code version changes (the definitions reloaded).
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from bench_tick import assets_of, load_project_defs
from dagster._core.test_utils import freeze_time
from generate_dbt_project import write_project

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation.apply import apply_policy, policy_of
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor, evaluate_sensor_tick

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

START = datetime.datetime(2026, 1, 5, 0, 0, tzinfo=datetime.UTC)
ADVANCES = [datetime.timedelta(seconds=30)] * 4 + [
    datetime.timedelta(minutes=5),
    datetime.timedelta(minutes=30),
    datetime.timedelta(hours=1),
]
GUARDRAILS = [
    {"freshness": {"ttl": "2h"}},
    {"quiet_hours": "02:00-04:30"},
    {"backoff": {"base": "10m", "max_failures": 3}},
]
FAIL_TAG = "bench/fail"


def with_guardrails(assets, rng: random.Random) -> list[dg.AssetsDefinition]:
    """The assets, a tenth of the models with each of `GUARDRAILS` (layered on their policy)."""

    def override(spec: dg.AssetSpec) -> dg.AssetSpec:
        draw, policy = rng.random(), policy_of(spec.metadata)
        if policy is None or not policy.enabled or draw >= 0.1 * len(GUARDRAILS):
            return spec
        base = policy.model_dump(exclude_defaults=True)
        return apply_policy(spec, {**base, **GUARDRAILS[int(draw * 10)]})

    return [a.map_asset_specs(override) for a in assets]


def with_code_version(assets, key: dg.AssetKey, code_version: str) -> list[dg.AssetsDefinition]:
    def edit(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(code_version=code_version) if spec.key == key else spec

    return [a.map_asset_specs(edit) for a in assets]


def stand_in_for(assets, order) -> dg.AssetsDefinition:
    """One multi-asset with the assets' keys, dependencies and code versions; a run tagged
    `FAIL_TAG` fails before building anything."""
    specs = [spec.replace_attributes(automation_condition=None) for a in assets for spec in a.specs]

    @dg.multi_asset(specs=specs, can_subset=True, name="stand_in_for_dbt")
    def stand_in(context):
        if context.run.tags.get(FAIL_TAG):
            raise RuntimeError("simulated failure")
        for key in order:
            if key in context.selected_asset_keys:
                yield dg.MaterializeResult(asset_key=key)

    return stand_in


class Day:
    """The two sensors over one instance, their cursors, and the simulated clock."""

    def __init__(self, assets, instance: dg.DagsterInstance):
        self.instance = instance
        self.now = START
        self.cursors: dict[bool, str | None] = {True: None, False: None}
        self.set_assets(assets)

    def set_assets(self, assets) -> None:
        self.assets = assets
        graph = dg.Definitions(assets=assets).resolve_asset_graph()
        self.order = list(graph.toposorted_asset_keys)
        self.sensors = {
            quiet: AutopilotAutomationSensor(
                "equivalence", target=dg.AssetSelection.all(), incremental=quiet
            )
            for quiet in (True, False)
        }
        self.repository = dg.Definitions(assets=assets).get_repository_def()
        self.stand_in = stand_in_for(assets, self.order)

    def tick(self, advance: datetime.timedelta) -> tuple[list, list, str]:
        """One tick of both sensors: their requested selections, and how ours evaluated
        ("skipped", "partial" or "full")."""
        self.now += advance
        selections, how = {}, "full"
        for quiet, sensor in self.sensors.items():
            context = dg.build_sensor_context(
                instance=self.instance, cursor=self.cursors[quiet], repository_def=self.repository
            )
            result, _ = evaluate_sensor_tick(
                sensor, context, evaluation_time=self.now, incremental=quiet
            )
            self.cursors[quiet] = result.cursor
            selections[quiet] = sorted(
                sorted(k.to_user_string() for k in request.asset_selection)
                for request in result.run_requests
            )
            if quiet and result.skip_reason is not None:
                how = "skipped"
            elif quiet and self._partial(result.cursor):
                how = "partial"
        return selections[True], selections[False], how

    def _partial(self, cursor: str) -> bool:
        """Whether the tick that wrote `cursor` left assets unevaluated: their state is older."""
        graph = self.repository.asset_graph
        state = internals.asset_daemon_cursor_from_instigator_serialized_cursor(cursor, graph)
        return any(
            c.effective_timestamp != self.now.timestamp() for c in state.previous_condition_cursors
        )

    def run(self, keys, fail: bool = False) -> None:
        with freeze_time(self.now):
            dg.materialize(
                [self.stand_in],
                selection=sorted(keys),
                instance=self.instance,
                tags={FAIL_TAG: "1"} if fail else None,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            )

    def start_run(self, key) -> dg.DagsterRun:
        job = dg.Definitions(
            assets=[self.stand_in], jobs=[dg.define_asset_job("stand_in_job")]
        ).resolve_job_def("stand_in_job")
        return self.instance.create_run_for_job(
            job_def=job.get_subset(asset_selection={key}),
            asset_selection=frozenset({key}),
            status=dg.DagsterRunStatus.STARTED,
        )


@dataclass
class DayResult:
    """How a simulated day went: ticks by how ours evaluated, and the first difference, if any."""

    ticks: int = 0
    kinds: dict[str, int] = field(default_factory=lambda: {"skipped": 0, "partial": 0, "full": 0})
    difference: str | None = None


def simulate_day(
    assets, hours: float, rng: random.Random, report: Callable[[str], None] = print
) -> DayResult:
    """Ticks both sensors over `hours` of random history on a fresh instance; stops at the first
    tick where their requests differ. `report` gets one line per tick."""
    result = DayResult()
    with dg.instance_for_test() as instance:
        day = Day(assets, instance)
        graph = dg.Definitions(assets=assets).resolve_asset_graph()
        seeds = [k for k in day.order if graph.get(k).tags.get("dagster/materialization") == "seed"]
        models = [k for k in day.order if k not in seeds]
        requested: list = []
        running: list[dg.DagsterRun] = []
        while day.now < START + datetime.timedelta(hours=hours):
            draw = rng.random()
            if requested:
                day.run({dg.AssetKey.from_user_string(k) for s in requested for k in s}, draw < 0.1)
            elif draw < 0.15:
                day.run({rng.choice(seeds)})
            elif draw < 0.2:
                day.run({rng.choice(models)}, fail=True)
            elif draw < 0.25:
                running.append(day.start_run(rng.choice(models)))
            elif draw < 0.3 and running:
                instance.report_run_canceled(running.pop())
            elif draw < 0.32:
                day.set_assets(with_code_version(day.assets, rng.choice(models), f"edit{result.ticks}"))
            ours, full, how = day.tick(rng.choice(ADVANCES))
            result.ticks += 1
            result.kinds[how] += 1
            requested = full
            report(
                f"{day.now:%a %H:%M:%S} {how:<8} "
                f"requested {sum(len(s) for s in full)} in {len(full)} runs"
            )
            if ours != full:
                result.difference = f"at {day.now}: incremental {ours}, full evaluation {full}"
                return result
    return result


def load_day_assets(project: Path, rng: random.Random) -> list[dg.AssetsDefinition]:
    """The generated project's assets, loaded as `dg` loads them, with `GUARDRAILS` layered on."""
    return with_guardrails(assets_of(load_project_defs(project)), rng)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=300, help="synthetic dbt models")
    parser.add_argument("--hours", type=float, default=24, help="simulated hours")
    parser.add_argument("--seed", type=int, default=18, help="random seed of the history")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="equivalence_quiet_tick_"))
    project = write_project(workdir / f"ours_{args.models}", args.models, "ours")
    assets = load_day_assets(project, rng)
    started = time.perf_counter()
    result = simulate_day(assets, args.hours, rng, report=lambda line: print(line, flush=True))
    if result.difference is not None:
        print(f"DIFFERENCE {result.difference}")
        sys.exit(1)
    kinds = result.kinds
    print()
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(
        f"{result.ticks} ticks over {args.hours} h at N={args.models}: the same requests on every "
        f"tick; {kinds['skipped']} quiet ticks skipped, {kinds['partial']} partial, "
        f"{kinds['full']} full ({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
