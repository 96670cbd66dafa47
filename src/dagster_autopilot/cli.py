"""The `autopilot` command line: one function per command."""

import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Inspect the automation of a dagster-autopilot project.", no_args_is_help=True)


def load_project_defs(project_root: Path):
    """The project's definitions, loaded as `dg` loads them (the defs folder of the project)."""
    import dagster as dg

    # As `dg` commands do: lets components such as the dbt one prepare their state when missing.
    os.environ.setdefault("DAGSTER_IS_DEV_CLI", "1")
    return dg.load_from_defs_folder(path_within_project=project_root)


# The options every command takes.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ProjectRoot = Annotated[
    Path, typer.Option("--project-root", help="A path inside the dg project (default: here).")
]


@app.command()
def status(
    json_output: JsonFlag = False,
    project_root: ProjectRoot = Path("."),
) -> None:
    """For each automated asset: policy, last materialization, last auto run, next refresh, backoff.

    Reads the instance in DAGSTER_HOME.
    """
    import dagster as dg

    from dagster_autopilot.automation.status import as_json, as_table, automation_status

    defs = load_project_defs(project_root.resolve())
    with dg.DagsterInstance.get() as instance:
        statuses = automation_status(defs, instance)
    typer.echo(as_json(statuses) if json_output else as_table(statuses))


@app.command("estimate-cost")
def estimate_cost(
    json_output: JsonFlag = False,
    project_root: ProjectRoot = Path("."),
) -> None:
    """What embedding the pending records (new or changed since the last run) would cost.

    Reads the warehouse (`AUTOPILOT_DUCKDB_PATH`, or PostgreSQL with `DBT_TARGET=postgres`) and
    writes nothing.
    """
    import json
    from dataclasses import asdict

    from dagster_autopilot.components.embedding import EmbedderConfig
    from dagster_autopilot.pipelines.embedding import EMBEDDING_METADATA, estimate_pending_cost
    from dagster_autopilot.warehouse.connection import Warehouse, use_project_warehouse_by_default

    root = project_root.resolve()
    use_project_warehouse_by_default(root)
    defs = load_project_defs(root)
    estimates = [
        estimate_pending_cost(
            spec.key.to_user_string(),
            getattr(spec.metadata[EMBEDDING_METADATA], "value", spec.metadata[EMBEDDING_METADATA]),
            Warehouse.from_env(),
            lambda config: EmbedderConfig.model_validate(config).build(),
        )
        for spec in defs.resolve_all_asset_specs()
        if EMBEDDING_METADATA in spec.metadata
    ]
    if json_output:
        typer.echo(json.dumps([asdict(e) for e in estimates], indent=2))
        return
    for e in estimates:
        typer.echo(
            f"{e.asset}: {e.records_to_embed} to embed, {e.records_to_delete} to delete, "
            f"{e.records_unchanged} unchanged; {e.tokens} tokens, {e.characters} characters; "
            f"estimated ${e.estimated_cost_usd:.4f} with {e.embedder}"
        )
    total = sum(e.estimated_cost_usd for e in estimates)
    typer.echo(f"total: ${total:.4f}")
