"""Times an automation tick of CustomDbtComponent's conditions against the same graph under eager().

    uv run python benchmarks/bench_tick.py --models 1000 --repeats 5

Generates the `ours` project, loads its definitions in this process the way `dg` does
(`dg.load_from_defs_folder` with `DAGSTER_IS_DEV_CLI=1`), and builds a second Definitions with the
same asset specs but every automation condition replaced by `AutomationCondition.eager()`.

Each variant gets its own on-disk test instance in which every asset has been materialized once (a
runless materialization, parents first), so the graph starts up to date. Then, for each variant, a
baseline tick (the first one, which fills the cursor) and `--repeats` timed ticks with
`dg.evaluate_automation_conditions`, carrying the cursor, 30 s apart, alternating variants. Before
every other timed tick `--updates` seeds are materialized again (the same seeds for both variants),
so changes propagate. The clock starts at 05:59 UTC, so one of the first ticks crosses the tables'
06:00 cron.

After every tick (untimed), what the tick requested is built in one real run in that variant's
instance, as the sensor would launch it: a stand-in multi-asset with the same keys, dependencies
and code versions materializes the requested keys. Without it, nothing requested ever builds, so
the policies that keep a stale asset requested until it materializes would request (and check) the
same assets on every tick, which no deployment sees. `--no-runs` measures that way instead.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from _common import Samples, markdown_table, project_env
from generate_dbt_project import write_project

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

TICK_TARGET = 1.5
START = datetime.datetime(2026, 1, 5, 5, 59, tzinfo=datetime.UTC)
STEP = datetime.timedelta(seconds=30)


def load_project_defs(project: Path) -> dg.Definitions:
    """The generated project's definitions, loaded in-process as `dg` loads them."""
    os.environ.update(
        {k: v for k, v in project_env(project).items() if k in ("AUTOPILOT_DUCKDB_PATH", "PATH")}
    )
    os.environ["DAGSTER_IS_DEV_CLI"] = "1"  # as `dg`: refresh the dbt state when needed
    sys.path.insert(0, str(project / "src"))
    return dg.load_from_defs_folder(path_within_project=project / "src" / "bench_project")


def assets_of(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """The AssetsDefinitions of `defs` (the dbt multi-asset)."""
    return [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]


def with_eager(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The same assets with every automation condition replaced by `AutomationCondition.eager()`."""
    return [
        a.map_asset_specs(
            lambda spec: spec.replace_attributes(automation_condition=dg.AutomationCondition.eager())
        )
        for a in assets
    ]


@dataclass
class Variant:
    """One variant's definitions, instance, clock and cursor."""

    name: str
    defs: dg.Definitions
    instance: dg.DagsterInstance
    now: datetime.datetime = START
    cursor: object | None = None
    requested: list[int] = field(default_factory=list)
    last_requested: list[dg.AssetKey] = field(default_factory=list)

    def tick(self) -> float:
        """Evaluates one tick 30 s after the previous one; returns its seconds."""
        self.now += STEP
        start = time.perf_counter()
        result = dg.evaluate_automation_conditions(
            defs=self.defs,
            instance=self.instance,
            cursor=self.cursor,  # type: ignore[arg-type]
            evaluation_time=self.now,
        )
        elapsed = time.perf_counter() - start
        self.cursor = result.cursor
        self.requested.append(result.total_requested)
        self.last_requested = [
            r.key
            for r in result.results
            if isinstance(r.key, dg.AssetKey) and not r.true_subset.is_empty
        ]
        return elapsed

    def run_requested(self, stand_in: dg.AssetsDefinition) -> None:
        """Builds what the last tick requested in one run, as the sensor would launch it."""
        if self.last_requested:
            dg.materialize(
                [stand_in],
                selection=self.last_requested,
                instance=self.instance,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            )


def stand_in_for(assets: Sequence[dg.AssetsDefinition], order: Sequence[dg.AssetKey]):
    """One multi-asset with the keys, dependencies and code versions of `assets`, computing nothing."""
    specs = [spec.replace_attributes(automation_condition=None) for a in assets for spec in a.specs]

    @dg.multi_asset(specs=specs, can_subset=True, name="stand_in_for_dbt")
    def stand_in(context):
        for key in order:  # a multi-asset yields parents before children
            if key in context.selected_asset_keys:
                yield dg.MaterializeResult(asset_key=key)

    return stand_in


def materialize(instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey]) -> None:
    """Records a runless materialization of each key, in order."""
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="synthetic dbt models")
    parser.add_argument("--repeats", type=int, default=5, help="timed ticks per variant")
    parser.add_argument("--updates", type=int, default=2, help="seeds updated every other tick")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    parser.add_argument(
        "--no-runs", action="store_true", help="never build what a tick requested (see above)"
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_tick_"))
    project = write_project(workdir / f"ours_{args.models}", args.models, "ours")
    start = time.perf_counter()
    defs = load_project_defs(project)
    print(f"loaded {project} in {time.perf_counter() - start:.1f}s", flush=True)

    ours_assets = assets_of(defs)
    graph = dg.Definitions(assets=ours_assets).resolve_asset_graph()
    order = list(graph.toposorted_asset_keys)
    seeds = sorted(
        (k for k in order if graph.get(k).tags.get("dagster/materialization") == "seed"),
        key=lambda k: k.to_user_string(),
    )
    conditions = sum(graph.get(k).automation_condition is not None for k in order)
    print(f"{len(order)} assets, {conditions} with a condition, {len(seeds)} seeds", flush=True)

    stand_in = stand_in_for(ours_assets, order)
    with dg.instance_for_test() as ours_instance, dg.instance_for_test() as eager_instance:
        variants = [
            Variant("ours", dg.Definitions(assets=ours_assets), ours_instance),
            Variant("eager", dg.Definitions(assets=with_eager(ours_assets)), eager_instance),
        ]
        labels = ("ours", "eager")
        baseline = Samples(f"N={args.models}: baseline tick (first, fills cursor)", None, labels)
        timed = Samples(f"N={args.models}: automation tick", TICK_TARGET, labels)
        for variant in variants:
            materialize(variant.instance, order)
            baseline.add(variant.name, variant.tick())
        for repeat in range(args.repeats):
            updated = [seeds[(repeat + i) % len(seeds)] for i in range(args.updates)]
            for variant in variants:
                if repeat % 2 == 0:
                    materialize(variant.instance, updated)
                seconds = variant.tick()
                timed.add(variant.name, seconds)
                print(
                    f"  [{repeat + 1}/{args.repeats}] {variant.name}: {seconds:.2f}s, "
                    f"{variant.requested[-1]} requested",
                    flush=True,
                )
                if not args.no_runs:
                    variant.run_requested(stand_in)

    print()
    for row in (baseline, timed):
        print(
            f"{row.name}: ours {row.median('ours'):.2f}s, eager {row.median('eager'):.2f}s, "
            f"ratio {row.ratio:.2f}x" + (f" (target <= {row.target}x)" if row.target else "")
        )
    for variant in variants:
        print(f"requested per tick, {variant.name}: {variant.requested}")
    print()
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(markdown_table([baseline, timed]))


if __name__ == "__main__":
    main()
