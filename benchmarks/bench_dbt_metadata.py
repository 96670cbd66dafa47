"""Times a dbt run of the seed project with the materialization metadata the UI shows, and without.

    uv run python benchmarks/bench_dbt_metadata.py --repeats 4

Writes two copies of the repository's `analytics_dbt` under the library's dbt component: `with`
(the defaults: `include_metadata: [column_metadata, row_count]`, so every model's columns and
types are read from the warehouse and every table's rows counted, plus the column lineage) and
`without` (`include_metadata: []`; the column lineage stays, since the change detection computes
the same shapes on every run). Each timed run is a fresh process that loads the definitions as
`dg` does, then builds every analytics model, seed and dbt test (`dbt build`, the talent models
excluded: their sources are Python assets) into a fresh DuckDB file; only the build is timed.
The variants alternate, `with` first then `without` first, so a machine's load hits both alike.
Target: `with` at most 1.2x `without` (medians). The fastest run of each is printed too: on a
shared machine it is the run the load disturbed least.
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

from _common import SEED_DBT_PROJECT, project_env
from generate_dbt_project import write_project

TARGET_RATIO = 1.2
VARIANTS = ("with", "without")


def make_projects(workdir: Path) -> dict[str, Path]:
    projects = {}
    for variant in VARIANTS:
        project = write_project(workdir / variant, 0, "ours", from_dbt_project=SEED_DBT_PROJECT)
        if variant == "without":
            defs_yaml = project / "src" / "bench_project" / "defs" / "dbt" / "defs.yaml"
            defs_yaml.write_text(defs_yaml.read_text() + "  include_metadata: []\n")
        projects[variant] = project
    return projects


def time_one_build(project: Path, warehouse: Path) -> dict:
    """In this process: loads `project`'s definitions, then times one build into `warehouse`."""
    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    os.environ.update({k: v for k, v in project_env(project).items() if k in ("PATH", "PYTHONPATH")})
    os.environ["AUTOPILOT_DUCKDB_PATH"] = str(warehouse)
    os.environ["DAGSTER_IS_DEV_CLI"] = "1"  # as `dg`: refresh the dbt state when needed
    sys.path.insert(0, str(project / "src"))
    defs = dg.load_from_defs_folder(path_within_project=project / "src" / "bench_project")
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    keys = [
        key
        for definition in assets
        for key, spec in definition.specs_by_key.items()
        if "talent" not in spec.tags
    ]
    with dg.instance_for_test() as instance:
        start = time.perf_counter()
        result = dg.materialize(assets, selection=keys, instance=instance, raise_on_error=False)
        seconds = time.perf_counter() - start
        if not result.success:
            raise SystemExit(f"the build of {project.name} failed")
        events = result.get_asset_materialization_events()
        with_rows = sum(
            "dagster/row_count" in e.step_materialization_data.materialization.metadata for e in events
        )
    return {"seconds": seconds, "materializations": len(events), "row_counts": with_rows}


def run_child(project: Path, warehouse: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(project), "--warehouse", str(warehouse)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{project.name} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed builds per variant")
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temp dir)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_one_build(args.child, args.warehouse)))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_dbt_metadata_"))
    projects = make_projects(workdir)
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for repeat in range(args.repeats):
        order = VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            warehouse = workdir / f"{variant}_{repeat}.duckdb"
            measured = run_child(projects[variant], warehouse)
            times[variant].append(measured["seconds"])
            print(
                f"run {repeat + 1} {variant:>7}: {measured['seconds']:.1f} s "
                f"({measured['materializations']} materializations, "
                f"{measured['row_counts']} with a row count)",
                flush=True,
            )
    with_s, without_s = (statistics.median(times[v]) for v in VARIANTS)
    ratio = with_s / without_s
    pairs = ", ".join(f"{w / o:.2f}x" for w, o in zip(times["with"], times["without"], strict=True))
    fastest_with, fastest_without = (min(times[v]) for v in VARIANTS)
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(
        f"dbt build of the seed project, medians: with metadata {with_s:.1f} s, without "
        f"{without_s:.1f} s = {ratio:.2f}x (runs {pairs}; target {TARGET_RATIO}x: {verdict}); "
        f"fastest runs {fastest_with:.1f} s / {fastest_without:.1f} s = "
        f"{fastest_with / fastest_without:.2f}x; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
