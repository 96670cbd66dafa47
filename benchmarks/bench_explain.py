"""Times `autopilot explain` after the definitions load, on the generated N-model project.

    uv run python benchmarks/bench_explain.py --models 1000 --repeats 5

Generates the `ours` project with its automation sensors (`--with-sensor`: at 1,000 models the
component splits them in three, of 500, 500 and 25 assets), loads its definitions in this process
as `dg` loads them, and prepares one test instance in which every asset has been materialized
once, parents first. Each sensor then ticks once with its own `evaluate_tick`, and its cursor is
stored in the instance as the sensor daemon stores it, so `explain` reads a real cursor. Then, for
a seed, a table in the middle of the graph, the asset with the most ancestors, and the asset with
the most ancestors in its own sensor (`explain` evaluates an asset with those: "evaluated"),
`--repeats` timed calls of `dagster_autopilot.automation.explain.explain` (what the command does
once the definitions are loaded and the instance is open). Target: each answer within 2 s.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg
from bench_tick import assets_of, load_project_defs, materialize
from generate_dbt_project import write_project

from dagster_autopilot._dagster_internals import store_sensor_cursor
from dagster_autopilot.automation.explain import explain
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

TARGET_SECONDS = 2.0


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="synthetic dbt models")
    parser.add_argument("--repeats", type=int, default=5, help="timed answers per asset")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_explain_"))
    project = write_project(workdir / f"ours_{args.models}", args.models, "ours", with_sensor=True)
    start = time.perf_counter()
    defs = load_project_defs(project)
    print(f"loaded {project} in {time.perf_counter() - start:.1f}s", flush=True)

    graph = dg.Definitions(assets=assets_of(defs)).resolve_asset_graph()
    order = list(graph.toposorted_asset_keys)
    sensors = [s for s in defs.sensors or [] if isinstance(s, AutopilotAutomationSensor)]
    seed = next(k for k in order if graph.get(k).tags.get("dagster/materialization") == "seed")
    deepest = max(order, key=lambda k: len(graph.get_ancestor_asset_keys(k)))
    tables = [k for k in order if graph.get(k).tags.get("dagster/materialization") == "table"]
    middle = tables[len(tables) // 2]
    # `explain` evaluates the asset with its ancestors of the same sensor: the most of those is
    # its slowest answer.
    members: dict[dg.AssetKey, set[dg.AssetKey]] = {}  # each asset's sensor's assets
    for sensor in sensors:
        selected = sensor.asset_selection.resolve(graph)
        members.update(dict.fromkeys(selected, selected))
    most_evaluated = max(members, key=lambda k: len(graph.get_ancestor_asset_keys(k) & members[k]))
    print(f"{len(order)} assets, {len(sensors)} automation sensors", flush=True)

    with dg.instance_for_test() as instance:
        materialize(instance, order)
        repository = defs.get_repository_def()
        for sensor in sensors:
            context = dg.build_sensor_context(instance=instance, repository_def=repository)
            start = time.perf_counter()
            data = sensor.evaluate_tick(context)
            print(f"  tick of {sensor.name}: {time.perf_counter() - start:.2f}s", flush=True)
            store_sensor_cursor(instance, sensor.name, data.cursor)

        now = datetime.datetime.now(datetime.UTC)  # the materializations above are of now
        rows = []
        cases = (
            ("seed", seed),
            ("middle table", middle),
            ("most ancestors", deepest),
            ("most ancestors in its sensor", most_evaluated),
        )
        for label, key in cases:
            ancestors = len(graph.get_ancestor_asset_keys(key))
            evaluated = len(graph.get_ancestor_asset_keys(key) & members[key]) + 1
            times, sentence = [], ""
            for repeat in range(args.repeats):
                moment = now + datetime.timedelta(seconds=30 * (repeat + 1))
                begin = time.perf_counter()
                sentence = explain(defs, instance, key, evaluation_time=moment).sentence
                times.append(time.perf_counter() - begin)
            rows.append((label, key.to_user_string(), ancestors, evaluated, times))
            print(f"  {key.to_user_string()}: {sentence}", flush=True)

    print()
    print("| asset | ancestors | evaluated | median s | max s | target |")
    print("|---|---|---|---|---|---|")
    for label, name, ancestors, evaluated, times in rows:
        verdict = "ok" if max(times) <= TARGET_SECONDS else "MISSED"
        print(
            f"| {label} (`{name}`) | {ancestors} | {evaluated} | {statistics.median(times):.2f} | "
            f"{max(times):.2f} | <= {TARGET_SECONDS:.0f} s: {verdict} |"
        )
    print()
    print(f"Load average at the end: {', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
