"""Times `autopilot plan` against one `dg list defs` plus one tick, on the generated N-model project.

    uv run python benchmarks/bench_plan.py --models 1000 --repeats 3

Generates the `ours` project with its automation sensors, loads its definitions in this process as
`dg` loads them, and prepares an on-disk instance (the `DAGSTER_HOME` of the timed commands) in
which every asset has been materialized once, parents first, as the dbt component's runs record it:
stamped with its code version and carrying its change metadata (`autopilot/shape`...). Each sensor
then ticks once with its own `evaluate_tick` (timed: together, "one tick") and its cursor is stored
in the instance as the sensor daemon stores it.

Then one staging model's `label` expression is edited (a breaking change that reaches the models
reading `label`), `dg list defs` runs once untimed (it re-parses the edited project, as the first
command after an edit does), and `--repeats` runs of `dg list defs` and of
`autopilot plan --json` alternate, each a fresh process. Target: the median `autopilot plan` at
most the median `dg list defs` plus the tick.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg
from _common import DG, VENV_BIN, project_env, run_dg
from bench_tick import load_project_defs
from generate_dbt_project import write_project

from dagster_autopilot._dagster_internals import store_sensor_cursor
from dagster_autopilot.automation.plan import plan
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor
from dagster_autopilot.changes.affected import CODE_VERSION_TAG, change_metadata

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

AUTOPILOT = str(VENV_BIN / "autopilot")


def record_builds(instance: dg.DagsterInstance, defs: dg.Definitions) -> int:
    """A runless materialization of every asset, parents first, as the dbt runs record it."""
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    graph = defs.resolve_asset_graph()
    order = [k for k in graph.toposorted_asset_keys if k in specs]
    for key in order:
        spec = specs[key]
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=key,
                tags={CODE_VERSION_TAG: spec.code_version} if spec.code_version else None,
                metadata=change_metadata(instance, key, spec),
            )
        )
    return len(order)


def edit_a_staging_model(project: Path) -> str:
    """Upper-cases the `label` of the first staging model; returns its name."""
    staging = sorted((project / "dbt_project" / "models").rglob("stg_*.sql"))[0]
    text = staging.read_text()
    old = "{{ bench_clean('label') }} as label"
    assert old in text, staging
    staging.write_text(text.replace(old, "upper({{ bench_clean('label') }}) as label"))
    return staging.stem


def run_plan(project: Path, home: Path) -> tuple[float, dict]:
    """`autopilot plan --json` in a fresh process: its seconds and its answer."""
    env = {**project_env(project), "DAGSTER_HOME": str(home)}
    start = time.perf_counter()
    result = subprocess.run(
        [AUTOPILOT, "plan", "--json", "--project-root", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"autopilot plan failed:\n{result.stderr[-4000:]}")
    return elapsed, json.loads(result.stdout)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="synthetic dbt models")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each command")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_plan_"))
    project = write_project(workdir / f"ours_{args.models}", args.models, "ours", with_sensor=True)
    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    start = time.perf_counter()
    defs = load_project_defs(project)
    print(f"loaded {project} in {time.perf_counter() - start:.1f}s", flush=True)
    sensors = [s for s in defs.sensors or [] if isinstance(s, AutopilotAutomationSensor)]

    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        start = time.perf_counter()
        count = record_builds(instance, defs)
        print(f"recorded {count} builds in {time.perf_counter() - start:.1f}s", flush=True)
        tick = 0.0
        repository = defs.get_repository_def()
        for sensor in sensors:
            context = dg.build_sensor_context(instance=instance, repository_def=repository)
            begin = time.perf_counter()
            data = sensor.evaluate_tick(context)
            tick += time.perf_counter() - begin
            store_sensor_cursor(instance, sensor.name, data.cursor)
        print(f"one tick ({len(sensors)} sensors): {tick:.2f}s", flush=True)
        begin = time.perf_counter()
        unchanged = plan(defs, instance)
        in_process = time.perf_counter() - begin
        print(
            f"plan() in process, nothing changed: {in_process:.2f}s, "
            f"{len(unchanged['changes'])} changes",
            flush=True,
        )

    edited = edit_a_staging_model(project)
    run_dg(project, "list", "defs")  # the first command after the edit re-parses the project
    os.environ.pop("DAGSTER_IS_DEV_CLI", None)
    list_times, plan_times, answer = [], [], {}
    for _ in range(args.repeats):
        list_times.append(run_dg(project, "list", "defs"))
        seconds, answer = run_plan(project, home)
        plan_times.append(seconds)
    listed, planned = statistics.median(list_times), statistics.median(plan_times)
    budget = listed + tick
    changes = [(c["asset"], c["category"], c["columns"]) for c in answer["changes"]]
    print(f"edited {edited}: changes {changes}, {len(answer['rebuilds'])} rebuilds", flush=True)
    print()
    print("| measurement | median s | runs s |")
    print("|---|---|---|")
    print(f"| `dg list defs` | {listed:.2f} | {', '.join(f'{t:.2f}' for t in list_times)} |")
    print(f"| one tick ({len(sensors)} sensors) | {tick:.2f} | |")
    print(f"| `autopilot plan --json` | {planned:.2f} | {', '.join(f'{t:.2f}' for t in plan_times)} |")
    verdict = "ok" if planned <= budget else "MISSED"
    print()
    print(f"Target: plan <= dg list defs + one tick = {budget:.2f} s: {verdict}")
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])} (dg: {DG})")


if __name__ == "__main__":
    main()
