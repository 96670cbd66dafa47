"""The `autopilot` command line: one function per command."""

import contextlib
import enum
import os
import sys
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


def open_instance():
    """The instance in DAGSTER_HOME, checked by one query; a `typer.Exit(1)` that says which
    DAGSTER_HOME (and database) it tried when it cannot be opened or reached."""
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        typer.echo("error: DAGSTER_HOME is not set; set it to the Dagster instance's folder.", err=True)
        raise typer.Exit(1)
    instance = None
    try:
        instance = dg.DagsterInstance.get()
        instance.get_runs_count()
    except Exception as error:  # a missing folder, a bad dagster.yaml, an unreachable database
        if instance is not None:
            instance.dispose()
        typer.echo(
            f"error: cannot open the Dagster instance in DAGSTER_HOME={home} "
            f"({configured_database(Path(home))}): {error}",
            err=True,
        )
        raise typer.Exit(1) from None
    return instance


def configured_database(home: Path) -> str:
    """The storage `home`'s dagster.yaml configures, in words and without credentials: the
    database's host, port and name, or the SQLite files under `home`."""
    import yaml

    try:
        config = yaml.safe_load((home / "dagster.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    storage = config.get("storage") if isinstance(config, dict) else None
    for kind in ("postgres", "mysql"):
        settings = (storage or {}).get(kind) if isinstance(storage, dict) else None
        if not isinstance(settings, dict):
            continue
        url = settings.get(f"{kind}_url")
        if isinstance(url, str):
            from sqlalchemy.engine import make_url

            return f"{kind} database {make_url(url).render_as_string(hide_password=True)}"
        db = settings.get(f"{kind}_db") or {}

        def shown(value):  # `{env: NAME}` is read from the environment by Dagster
            return f"${value['env']}" if isinstance(value, dict) and "env" in value else value

        host, port, name = (shown(db.get(f)) for f in ("hostname", "port", "db_name"))
        return f"{kind} database {name} on {host}:{port or 'default port'}"
    return f"SQLite storage under {home}"


# `--at`, as `explain` and `plan` take it.
AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Evaluate at this ISO 8601 time instead of now (UTC if no offset)."),
]


def parse_at(at: str | None):
    """The time `--at` names (None for now); a `typer.Exit(2)` naming the expected format."""
    from dagster_autopilot.automation.explain import parse_time

    try:
        return parse_time(at) if at is not None else None
    except ValueError as error:
        typer.echo(f"error: --at: {error}", err=True)
        raise typer.Exit(2) from None


def load_defs_quietly(project_root: Path):
    """`load_project_defs`, with what components print while the definitions load sent to
    stderr: only the answer goes to stdout, so that `--json` parses."""
    with contextlib.redirect_stdout(sys.stderr):
        return load_project_defs(project_root.resolve())


@app.command()
def explain(
    asset: Annotated[str, typer.Argument(help="The asset key, e.g. customer_orders or a/b.")],
    json_output: JsonFlag = False,
    at: AtOption = None,
    project_root: ProjectRoot = Path("."),
) -> None:
    """Why ASSET would (or would not) be requested on the automation's next tick, and until when.

    Evaluates the asset's automation condition with its sensor's stored cursor, in the instance in
    DAGSTER_HOME, without launching anything or writing any cursor.
    """
    from dagster_autopilot.automation.explain import UnknownAssetError
    from dagster_autopilot.automation.explain import explain as explain_asset

    evaluation_time = parse_at(at)
    defs = load_defs_quietly(project_root)
    instance = open_instance()
    try:
        explanation = explain_asset(defs, instance, asset, evaluation_time)
    except UnknownAssetError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        instance.dispose()
    typer.echo(explanation.as_json() if json_output else explanation.as_text())


class FailOn(enum.StrEnum):
    """What `plan --fail-on` fails on."""

    breaking = "breaking"
    any = "any"


@app.command()
def plan(
    json_output: JsonFlag = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print Markdown tables, for a pull-request comment.")
    ] = False,
    at: AtOption = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when a change is breaking (or unknown, which counts as breaking), or with "
            "`any`, when anything changed.",
        ),
    ] = None,
    project_root: ProjectRoot = Path("."),
) -> None:
    """What the project's code would rebuild once deployed: each changed asset with its category
    and columns, each rebuild with its cause, when, and its estimated duration.

    Compares the definitions with what the instance in DAGSTER_HOME last built, without launching
    anything or writing any cursor.
    """
    from dagster_autopilot.automation.plan import as_json, as_markdown, as_text
    from dagster_autopilot.automation.plan import plan as plan_changes

    if json_output and markdown:
        typer.echo("error: --json and --markdown exclude each other.", err=True)
        raise typer.Exit(2)
    evaluation_time = parse_at(at)
    defs = load_defs_quietly(project_root)
    instance = open_instance()
    try:
        # Shapes are computed on demand, and dbt may print while it compiles one.
        with contextlib.redirect_stdout(sys.stderr):
            result = plan_changes(defs, instance, evaluation_time)
    finally:
        instance.dispose()
    typer.echo(as_json(result) if json_output else as_markdown(result) if markdown else as_text(result))
    if (fail_on == FailOn.breaking and result["breaking"]) or (
        fail_on == FailOn.any and result["changes"]
    ):
        raise typer.Exit(1)


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
