"""How many sensors, and how many runs an update fans out into, with the automation sensors split
consecutively (sorted keys, 500 a sensor) or along the asset graph (`split_into_sensors`).

    uv run python benchmarks/bench_fanout.py --models 5000

Three graphs of `--models` dbt models, from `generate_dbt_project.plan` (the same seeds, models and
`ref`s the generator writes, keyed by name as the dbt component keys them; no dbt parse):
- `one project`: one generated project of N models;
- `one project, names in no build order`: the same, every model renamed to a hash of its name (the
  generator's names start with their layer, so sorted names happen to follow the build order);
- `N/15 projects` (about): the same number of models as generated projects of 100 to 600 models
  each (`--project-sizes`), keyed `<project>/<model>`, as a deployment with several dbt projects.

For each split it counts the sensors, the projects cut across sensors, the parent/child pairs in
different sensors, and the runs an update requests under `runs_per_tick`'s model (the one the split
itself uses): every seed updated at once (runs on the first tick, runs per tick, ticks until the
last request) and each seed updated alone (mean runs and ticks over all seeds). The counts come
from the split alone, not from evaluating ticks. `--check-load DIR` first loads the generated
project through the library's dbt component (a dbt parse, slow at 5,000) and checks that it has
exactly this graph.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from bench_tick import assets_of, load_project_defs
from generate_dbt_project import plan, write_project

from dagster_autopilot._dagster_internals import MAX_ASSETS_PER_USER_CODE_SENSOR
from dagster_autopilot.automation.sensor_split import (
    crossing_edges,
    parents_of,
    runs_per_tick,
    split_into_sensors,
)

Graph = dict[dg.AssetKey, set[dg.AssetKey]]


def project_graph(
    n_models: int, seed: int = 0, prefix: str | None = None, scrambled: bool = False
) -> Graph:
    """The seeds and models of a generated project of `n_models` models, with their parents.

    `scrambled` renames every model to a hash of its name, so that sorted names no longer follow
    the layers (the generator's `lNN_` prefixes sort in build order, which real names need not).
    """
    layout = plan(n_models, seed)

    def key(name: str) -> dg.AssetKey:
        if scrambled and name not in layout.seeds:
            name = "m_" + hashlib.sha1(name.encode()).hexdigest()[:10]
        return dg.AssetKey([prefix, name] if prefix else [name])

    graph: Graph = {key(name): set() for name in layout.seeds}
    for model in layout.models:
        graph[key(model.name)] = {key(parent) for parent in model.parents}
    return graph


def projects_graph(n_models: int, sizes: Sequence[int]) -> tuple[Graph, list[set[dg.AssetKey]]]:
    """Generated projects of `sizes` in turn (the last one trimmed) until `n_models` models."""
    graph: Graph = {}
    projects = []
    remaining, index = n_models, 0
    while remaining > 0:
        size = min(sizes[index % len(sizes)], remaining)
        if remaining - size == 1:  # a project has at least two models
            size += 1
        project = project_graph(size, seed=index, prefix=f"project_{index:02d}")
        graph.update(project)
        projects.append(set(project))
        remaining -= size
        index += 1
    return graph, projects


def check_load(workdir: Path, n_models: int, expected: Graph) -> None:
    """Loads the generated project through the library's dbt component and compares its graph."""
    project = write_project(workdir / f"ours_{n_models}", n_models, "ours", with_sensor=True)
    start = time.perf_counter()
    defs = load_project_defs(project)
    specs = [spec for assets in assets_of(defs) for spec in assets.specs]
    print(f"loaded {project} in {time.perf_counter() - start:.0f} s", flush=True)
    assert parents_of(specs) == expected, "the loaded graph differs from the generator's plan"
    assert all(spec.automation_condition is not None for spec in specs)
    sensors = [sensor.name for sensor in defs.sensors]
    print(f"same graph, {len(specs)} assets, every one automated; sensors: {sensors}", flush=True)


def consecutive_split(keys: Sequence[dg.AssetKey], limit: int) -> list[list[dg.AssetKey]]:
    """The split before the graph split: sorted keys cut into consecutive groups of `limit`."""
    ordered = sorted(keys, key=lambda key: key.to_user_string())
    return [ordered[i : i + limit] for i in range(0, len(ordered), limit)]


@dataclass
class Figures:
    """What one split of one graph gives."""

    sensors: int
    projects_cut: int
    crossing: int
    all_seeds: list[int]
    one_seed_runs: float
    one_seed_ticks: float
    seconds: float

    def row(self, graph_name: str, split_name: str, edges: int, projects: str) -> str:
        return (
            f"| {graph_name} | {split_name} | {self.sensors} | {self.projects_cut} of {projects} | "
            f"{self.crossing} of {edges} | {self.all_seeds[0] if self.all_seeds else 0} | "
            f"{sum(self.all_seeds)} ({', '.join(map(str, self.all_seeds))}) | "
            f"{len(self.all_seeds)} | {self.one_seed_runs:.1f} | {self.one_seed_ticks:.1f} | "
            f"{self.seconds:.2f} |"
        )


def measure(graph: Graph, projects: list[set[dg.AssetKey]], groups, seconds: float) -> Figures:
    """The figures of `groups` (every key of `graph` automated) on `graph`."""
    group_of = {key: index for index, group in enumerate(groups) for key in group}
    assert sorted(group_of) == sorted(graph) and len(group_of) == sum(map(len, groups))
    seeds = sorted(key for key, parents in graph.items() if not parents)
    alone = [runs_per_tick(graph, groups, updated={seed}) for seed in seeds]
    return Figures(
        sensors=len(groups),
        projects_cut=sum(len({group_of[key] for key in project}) > 1 for project in projects),
        crossing=crossing_edges(graph, groups),
        all_seeds=runs_per_tick(graph, groups),
        one_seed_runs=statistics.mean(sum(runs) for runs in alone),
        one_seed_ticks=statistics.mean(len(runs) for runs in alone),
        seconds=seconds,
    )


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=5000, help="dbt models in all")
    parser.add_argument("--limit", type=int, default=MAX_ASSETS_PER_USER_CODE_SENSOR)
    parser.add_argument(
        "--project-sizes",
        default="450,120,600,300,100,250,500,180",
        help="models per project of the several-projects graph, in turn",
    )
    parser.add_argument(
        "--check-load",
        type=Path,
        metavar="DIR",
        help="first generate the project in DIR and load it as `dg` does (a dbt parse), and check "
        "that its assets are the `one project` graph, every one automated",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.project_sizes.split(",")]

    one = project_graph(args.models)
    if args.check_load:
        check_load(args.check_load, args.models, one)
    scrambled = project_graph(args.models, scrambled=True)
    several, projects = projects_graph(args.models, sizes)
    graphs = {
        "one project": (one, [set(one)]),
        "one project, names in no build order": (scrambled, [set(scrambled)]),
        f"{len(projects)} projects": (several, projects),
    }
    header = (
        "| graph | split | sensors | projects cut | parent/child pairs split | "
        "all seeds: runs on tick 1 | all seeds: runs (per tick) | all seeds: ticks | "
        "one seed: mean runs | one seed: mean ticks | split s |\n"
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    )
    rows = []
    for graph_name, (graph, members) in graphs.items():
        edges = sum(map(len, graph.values()))
        seeds = sum(not parents for parents in graph.values())
        over = sum(len(project) > args.limit for project in members)
        projects = f"{len(members)} ({over} over the limit)"
        print(f"{graph_name}: {len(graph)} assets, {seeds} seeds, {edges} pairs", flush=True)
        for split_name, split in (
            ("consecutive", lambda g: consecutive_split(list(g), args.limit)),
            ("graph", lambda g: split_into_sensors(g, list(g), args.limit)),
        ):
            start = time.perf_counter()
            groups = split(graph)
            seconds = time.perf_counter() - start
            figures = measure(graph, members, groups, seconds)
            rows.append(figures.row(graph_name, split_name, edges, projects))
            print(f"  {split_name}: {figures}", flush=True)
    print()
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
