"""Writes a synthetic dg project around a dbt project of N models, for the scale benchmarks.

    python benchmarks/generate_dbt_project.py --models 1000 --out /tmp/bench_ours --component ours

The output is a complete dg project:

    DIR/dg.toml                                  root module `bench_project`
    DIR/src/bench_project/definitions.py         `dg.load_from_defs_folder`, as the main project does
    DIR/src/bench_project/defs/dbt/defs.yaml     `dagster_autopilot.CustomDbtComponent` (ours)
                                                 or `dagster_dbt.DbtProjectComponent` (plain)
    DIR/dbt_project/                             the dbt project (DuckDB, path from the environment)

Run `dg` in DIR with `PYTHONPATH=DIR/src`. The dbt project has about 5% staging views fed by seeds,
then 8-12 layers of views, tables and incremental models; every model reads 1-4 parents from
earlier layers (one always from the layer just before), calls 2-3 shared macros (one through
`adapter.dispatch`), and each folder has a `schema.yml` with some `not_null` / `unique` tests.
The same `--models` and `--seed` always give the same files.

`--from-dbt-project PATH` copies an existing dbt project instead of generating one (the benchmarks
use it for the main project's small `analytics_dbt`).
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Component = Literal["ours", "plain"]

COMPONENT_TYPES: dict[Component, str] = {
    "ours": "dagster_autopilot.CustomDbtComponent",
    "plain": "dagster_dbt.DbtProjectComponent",
}

# Materializations of the models past staging, with their weights.
MATERIALIZATIONS: tuple[tuple[str, float], ...] = (
    ("view", 0.45),
    ("table", 0.35),
    ("incremental", 0.20),
)

SEED_ROWS = 5
_COPY_IGNORE = shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb*", ".user.yml")


@dataclass
class Model:
    """One generated dbt model."""

    name: str
    folder: str
    materialized: str
    parents: list[str]
    uses_hash: bool
    tests: list[str] = field(default_factory=list)


@dataclass
class Layout:
    """The seeds and models of a generated dbt project, in build order."""

    seeds: list[str]
    models: list[Model]

    @property
    def depth(self) -> int:
        """Number of model folders (staging plus layers)."""
        return len({m.folder for m in self.models})


def plan(n_models: int, seed: int = 0) -> Layout:
    """Decides the seeds, models, materializations and edges of a project of `n_models` models."""
    if n_models < 2:
        raise ValueError("--models must be at least 2")
    rng = random.Random(seed)
    n_staging = max(1, round(0.05 * n_models))
    n_seeds = max(1, math.ceil(n_staging / 2))
    seeds = [f"raw_{i:03d}" for i in range(n_seeds)]
    models: list[Model] = []
    for i in range(n_staging):
        models.append(
            Model(
                name=f"stg_{i:04d}",
                folder="staging",
                materialized="view",
                parents=[seeds[i % n_seeds]],
                uses_hash=False,
            )
        )
    layers: list[list[str]] = [[m.name for m in models]]

    remaining = n_models - n_staging
    depth = min(12, max(8, round(math.log2(n_models))), remaining)
    names, weights = zip(*MATERIALIZATIONS, strict=True)
    index = n_staging
    for layer in range(1, depth + 1):
        size = remaining // depth + (1 if layer <= remaining % depth else 0)
        current: list[str] = []
        for _ in range(size):
            name = f"l{layer:02d}_m{index:04d}"
            index += 1
            previous = layers[-1]
            parents = [rng.choice(previous)]
            earlier = [n for lay in layers for n in lay if n not in parents]
            fan_in = rng.choice((1, 2, 2, 3, 3, 4))
            # Bias extra parents toward recent layers, as real marts mostly read recent models.
            for _ in range(fan_in - 1):
                if not earlier:
                    break
                pick = earlier[min(len(earlier) - 1, int(len(earlier) * rng.random() ** 0.5))]
                earlier.remove(pick)
                parents.append(pick)
            models.append(
                Model(
                    name=name,
                    folder=f"layer_{layer:02d}",
                    materialized=rng.choices(names, weights)[0],
                    parents=parents,
                    uses_hash=rng.random() < 1 / 3,
                )
            )
            current.append(name)
        layers.append(current)

    for model in models:
        roll = rng.random()
        if roll < 0.10:
            model.tests = ["not_null", "unique"]
        elif roll < 0.25:
            model.tests = ["not_null"]
    return Layout(seeds=seeds, models=models)


def _seed_csv(index: int) -> str:
    rows = [f"{i},{(i * 37 + index * 11) % 1000},Label {index}-{i}" for i in range(1, SEED_ROWS + 1)]
    return "id,amount,label\n" + "\n".join(rows) + "\n"


def _model_sql(model: Model) -> str:
    config = f"materialized='{model.materialized}'"
    if model.materialized == "incremental":
        config += ", unique_key='id'"
    imports = ",\n".join(
        f"p{i} as (\n    select * from {{{{ ref('{parent}') }}}}\n)"
        for i, parent in enumerate(model.parents, start=1)
    )
    amount = " + ".join(
        ["{{ bench_scale('p1.amount') }}"]
        + [f"coalesce(p{i}.amount, 0)" for i in range(2, len(model.parents) + 1)]
    )
    joins = "".join(f"\nleft join p{i} on p1.id = p{i}.id" for i in range(2, len(model.parents) + 1))
    filters: list[str] = []
    if model.uses_hash:
        filters.append("{{ bench_hash('p1.label') }} is not null")
    where = f"\nwhere {' and '.join(filters)}" if filters else ""
    incremental = ""
    if model.materialized == "incremental":
        keyword = "and" if filters else "where"
        incremental = (
            "\n{% if is_incremental() %}\n"
            f"{keyword} p1.id > (select coalesce(max(id), 0) from {{{{ this }}}})\n"
            "{% endif %}"
        )
    return (
        f"{{{{ config({config}) }}}}\n\n"
        f"with {imports}\n\n"
        "select\n"
        "    p1.id,\n"
        f"    {amount} as amount,\n"
        "    {{ bench_clean('p1.label') }} as label\n"
        f"from p1{joins}{where}{incremental}\n"
    )


def _staging_sql(model: Model) -> str:
    return (
        "{{ config(materialized='view') }}\n\n"
        "select\n"
        "    id,\n"
        "    {{ bench_scale('amount') }} as amount,\n"
        "    {{ bench_clean('label') }} as label\n"
        f"from {{{{ ref('{model.parents[0]}') }}}}\n"
    )


MACROS = """\
{% macro bench_scale(expr, factor=1) -%}
    (cast({{ expr }} as double) * {{ factor }})
{%- endmacro %}

{% macro bench_clean(expr) -%}
    lower(trim(cast({{ expr }} as varchar)))
{%- endmacro %}

{% macro bench_hash(expr) -%}
    {{ return(adapter.dispatch('bench_hash')(expr)) }}
{%- endmacro %}

{% macro default__bench_hash(expr) -%}
    md5(cast({{ expr }} as varchar))
{%- endmacro %}
"""

DBT_PROJECT_YML = """\
name: bench
version: "1.0.0"
config-version: 2
profile: bench

flags:
  send_anonymous_usage_stats: false
  version_check: false

model-paths: ["models"]
seed-paths: ["seeds"]
macro-paths: ["macros"]

clean-targets: [target, dbt_packages, logs]

models:
  bench:
    +materialized: view
"""

PROFILES_YML = """\
bench:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('AUTOPILOT_DUCKDB_PATH') }}"
      schema: main
      threads: 1
"""


def _schema_yml(models: list[Model]) -> str:
    lines = ["version: 2", "", "models:"]
    for model in models:
        lines += [f"  - name: {model.name}", f"    description: Synthetic {model.materialized}."]
        if model.tests:
            lines += ["    columns:", "      - name: id", "        data_tests:"]
            lines += [f"          - {test}" for test in model.tests]
    return "\n".join(lines) + "\n"


def write_dbt_project(layout: Layout, dbt_dir: Path) -> None:
    """Writes the dbt project of `layout` to `dbt_dir`."""
    (dbt_dir / "macros").mkdir(parents=True, exist_ok=True)
    (dbt_dir / "seeds").mkdir(exist_ok=True)
    (dbt_dir / "dbt_project.yml").write_text(DBT_PROJECT_YML)
    (dbt_dir / "profiles.yml").write_text(PROFILES_YML)
    (dbt_dir / "macros" / "bench_macros.sql").write_text(MACROS)
    for i, seed in enumerate(layout.seeds):
        (dbt_dir / "seeds" / f"{seed}.csv").write_text(_seed_csv(i))
    seed_schema = ["version: 2", "", "seeds:"]
    seed_schema += [f"  - name: {s}\n    description: Synthetic seed." for s in layout.seeds]
    (dbt_dir / "seeds" / "schema.yml").write_text("\n".join(seed_schema) + "\n")

    by_folder: dict[str, list[Model]] = {}
    for model in layout.models:
        by_folder.setdefault(model.folder, []).append(model)
    for folder, models in by_folder.items():
        folder_dir = dbt_dir / "models" / folder
        folder_dir.mkdir(parents=True, exist_ok=True)
        for model in models:
            sql = _staging_sql(model) if folder == "staging" else _model_sql(model)
            (folder_dir / f"{model.name}.sql").write_text(sql)
        (folder_dir / "schema.yml").write_text(_schema_yml(models))


def _defs_yaml(component: Component) -> str:
    policies = ""
    if component == "ours":
        policies = '  policies:\n    table:\n      cron: "0 6 * * *"\n'
    return (
        f"type: {COMPONENT_TYPES[component]}\n"
        "attributes:\n"
        "  project:\n"
        '    project_dir: "{{ context.project_root }}/dbt_project"\n'
        '    profiles_dir: "{{ context.project_root }}/dbt_project"\n'
        f"{policies}"
    )


SENSOR_YAML = """\
type: dagster_autopilot.AutomationSensorComponent
attributes:
  name: autopilot_automation_sensor
  minimum_interval_seconds: 10
"""

DG_TOML = """\
directory_type = "project"

[project]
root_module = "bench_project"
code_location_target_module = "bench_project.definitions"
"""

DEFINITIONS_PY = '''\
"""Entry point `dg` loads: every component under `defs/`, as `autopilot_deployment.definitions`."""

import os
from pathlib import Path

import dagster as dg
from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("AUTOPILOT_DUCKDB_PATH", str(PROJECT_ROOT / ".data" / "warehouse.duckdb"))
Path(os.environ["AUTOPILOT_DUCKDB_PATH"]).parent.mkdir(parents=True, exist_ok=True)

# Same as the main project: the reconstruction right after an initialization reuses its build.
_initialized: list[dg.Definitions] = []


@dg.definitions
def defs() -> dg.Definitions:
    load_type = DefinitionsLoadContext.get().load_type
    if load_type == DefinitionsLoadType.RECONSTRUCTION and _initialized:
        return _initialized.pop()
    _initialized.clear()
    built = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    if load_type == DefinitionsLoadType.INITIALIZATION:
        _initialized.append(built)
    return built
'''


def write_project(
    out: Path,
    n_models: int,
    component: Component,
    seed: int = 0,
    with_sensor: bool = False,
    from_dbt_project: Path | None = None,
) -> Path:
    """Writes the whole dg project to `out` (replacing it) and returns `out`."""
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    package = out / "src" / "bench_project"
    (package / "defs" / "dbt").mkdir(parents=True)
    (out / ".data").mkdir()
    (out / "dg.toml").write_text(DG_TOML)
    (package / "__init__.py").write_text('"""Synthetic benchmark project."""\n')
    (package / "definitions.py").write_text(DEFINITIONS_PY)
    (package / "defs" / "dbt" / "defs.yaml").write_text(_defs_yaml(component))
    if with_sensor and component == "ours":
        (package / "defs" / "automation").mkdir()
        (package / "defs" / "automation" / "defs.yaml").write_text(SENSOR_YAML)
    if from_dbt_project is not None:
        shutil.copytree(from_dbt_project, out / "dbt_project", ignore=_COPY_IGNORE)
    else:
        write_dbt_project(plan(n_models, seed), out / "dbt_project")
    return out


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").split("\n")[0])
    parser.add_argument("--models", type=int, default=1000, help="number of dbt models")
    parser.add_argument("--out", type=Path, required=True, help="project directory to (re)create")
    parser.add_argument("--component", choices=sorted(COMPONENT_TYPES), default="ours")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the graph")
    parser.add_argument(
        "--with-sensor",
        action="store_true",
        help="also declare dagster_autopilot.AutomationSensorComponent (ours only)",
    )
    parser.add_argument(
        "--from-dbt-project", type=Path, help="copy this dbt project instead of generating one"
    )
    args = parser.parse_args()
    out = write_project(
        args.out, args.models, args.component, args.seed, args.with_sensor, args.from_dbt_project
    )
    if args.from_dbt_project is None:
        layout = plan(args.models, args.seed)
        counts = {m: sum(x.materialized == m for x in layout.models) for m, _ in MATERIALIZATIONS}
        print(
            f"{out}: {len(layout.models)} models ({counts}), {len(layout.seeds)} seeds, "
            f"{layout.depth} folders, {args.component}"
        )
    else:
        print(f"{out}: copy of {args.from_dbt_project}, {args.component}")


if __name__ == "__main__":
    main()
