"""What a dbt model's materialization shows in the UI: its real columns, rows and column lineage,
and, for an automation run, why the automation requested it.

- Column names and types come from the warehouse, undocumented columns included; the
  descriptions and tags of the documented ones are kept. `dagster/row_count` is each table's
  count (not a view's, whose count would run its query). On DuckDB and PostgreSQL both are read
  through the project's warehouse code, on one connection (`_with_warehouse_metadata`); on any
  other warehouse, through dagster-dbt's own fetching (`fetch_column_metadata`,
  `fetch_row_counts`).
- `dagster/column_lineage` comes from the project's own column lineage (`changes/`), the one the
  column-aware rebuilds use: dagster-dbt's lineage is turned off, so the SQL is parsed once.
- `autopilot/column_lineage`: the same lineage as a Markdown table, each column followed back
  through its ancestors (`customer_segments.lifetime_value` to `stg_orders.amount`), since
  Dagster's open-source UI does not display `dagster/column_lineage`.
- `autopilot/explain`: why the automation requested it, in one sentence
  (`automation/run_explain.py`, shared with the Python assets).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from dagster_autopilot.automation.run_explain import explain_metadata
from dagster_autopilot.changes.project import ProjectShapes, model_of
from dagster_autopilot.warehouse.connection import PostgresServer, Session, Warehouse

logger = dg.get_dagster_logger()

WAREHOUSE_METADATA = ("column_metadata", "row_count")
"""The dagster-dbt `include_metadata` the library's dbt component fetches by default."""

COLUMN_SCHEMA = "dagster/column_schema"
ROW_COUNT = "dagster/row_count"
STORAGE_KIND = "dagster/storage_kind"
COLUMN_LINEAGE = "dagster/column_lineage"
LINEAGE_TABLE_METADATA = "autopilot/column_lineage"


def dbt_events(invocation, include_metadata: Iterable[str]) -> Iterator:
    """The events of a dbt CLI invocation with the warehouse metadata of `include_metadata`
    (dagster-dbt's names: `column_metadata`, `row_count`, `insights`)."""
    include = set(include_metadata)
    wanted = WarehouseMetadata(columns="column_metadata" in include, row_count="row_count" in include)
    events = invocation.stream()
    warehouse = _warehouse_of(invocation.adapter) if wanted else None
    if warehouse is None and wanted.columns:
        # The column lineage is the project's own (`column_lineage`), not a second parse.
        events = events.fetch_column_metadata(with_column_lineage=False)
    if warehouse is None and wanted.row_count:
        events = events.fetch_row_counts()
    if "insights" in include:
        events = events.with_insights()
    if warehouse is not None:
        events = _with_warehouse_metadata(events, invocation, warehouse, wanted)
    return events


@dataclass(frozen=True)
class WarehouseMetadata:
    """Which of the warehouse's metadata a dbt run's materializations carry."""

    columns: bool
    row_count: bool

    def __bool__(self) -> bool:
        return self.columns or self.row_count


def _warehouse_of(adapter) -> Warehouse | None:
    """The warehouse dbt's profile points at, when the project's warehouse code reaches all of it:
    one DuckDB file (nothing attached) or a PostgreSQL database. None otherwise."""
    if adapter is None:  # dagster-dbt could not create it, or the dbt Fusion engine runs
        return None
    credentials = adapter.config.credentials
    if adapter.type() == "duckdb":
        path = credentials.path
        if credentials.attach or path == ":memory:" or path.startswith("md:") or "://" in path:
            return None
        return Warehouse(kind="duckdb", duckdb_path=path)
    if adapter.type() == "postgres":
        server = PostgresServer(
            host=credentials.host,
            port=credentials.port,
            user=credentials.user,
            password=credentials.password,
            dbname=credentials.database,
        )
        return Warehouse(kind="postgres", schema=credentials.schema, postgres=server)
    return None


def _with_warehouse_metadata(
    events: Iterable, invocation, warehouse: Warehouse, wanted: WarehouseMetadata
) -> Iterator:
    """`events` with each built relation's columns and row count, read on one connection.

    This replaces dagster-dbt's `fetch_column_metadata` and `fetch_row_counts` on DuckDB and
    PostgreSQL. Each of those runs a thread pool over every event of the run (data tests
    included), each thread opening its own adapter connection, one fetch after the other; on
    DuckDB both wait for dbt to exit first. Here, on DuckDB, one query reads the columns of every
    relation of the run and one counts their rows; on PostgreSQL the same two queries run for
    each model as dbt reports it.
    """
    nodes = invocation.manifest["nodes"]
    fetch = functools.partial(
        _fetch_metadata,
        wanted=wanted,
        column_class=invocation.adapter.Column,
        storage_kind=invocation.manifest.get("metadata", {}).get("adapter_type"),
    )
    if warehouse.kind == "duckdb":
        # The dbt process holds the file's lock until it exits: the events wait for it, then
        # one connection reads every relation at once and is closed before they go on.
        held, failure = _until_dbt_exits(events)
        built = [node for event in held if (node := _built_node(nodes, event)) is not None]
        fetched: dict[str, dict[str, Any]] = {}
        if built:
            try:
                with warehouse.connect() as session:
                    fetched = fetch(session, built)
            except Exception:
                logger.warning("The dbt models' columns and row counts could not be read", exc_info=True)
        yield from (_with_fetched(event, fetched) for event in held)
        if failure is not None:
            raise failure
        return
    # PostgreSQL serves readers while dbt writes: each event goes on as dbt reports it, its
    # relation read on one connection kept for the run.
    with contextlib.ExitStack() as stack:
        session = None
        for event in events:
            node = _built_node(nodes, event)
            if node is not None:
                try:
                    if session is None:
                        session = stack.enter_context(warehouse.connect())
                except Exception:
                    logger.warning("The warehouse could not be reached for dbt metadata", exc_info=True)
                else:
                    event = _with_fetched(event, fetch(session, [node]))
                    session.commit()  # ends the read, so no lock outlives it
            yield event


def _until_dbt_exits(events: Iterable) -> tuple[list, Exception | None]:
    """Every event of the run, and the error that ended it early (a failed dbt command), if any:
    the events before it go on with their metadata before it is raised."""
    held = []
    try:
        for event in events:
            held.append(event)
    except Exception as error:
        return held, error
    return held, None


def _built_node(nodes: Mapping[str, Any], event) -> Mapping[str, Any] | None:
    """The manifest node of the relation a materialization event built, or None."""
    if not isinstance(event, dg.Output | dg.AssetMaterialization):
        return None
    node = nodes.get(_value(event.metadata.get("unique_id")))
    if node is None or not node.get("relation_name"):
        return None  # not a model, seed or snapshot, or an ephemeral model
    return node


def _with_fetched(event, fetched: Mapping[str, Mapping[str, Any]]):
    added = fetched.get(_value(event.metadata.get("unique_id")))
    return event.with_metadata({**event.metadata, **added}) if added else event


def _relation_key(database: str | None, schema: str, name: str) -> tuple[str, str, str]:
    return ((database or "").lower(), schema.lower(), name.lower())


def _node_key(node: Mapping[str, Any]) -> tuple[str, str, str]:
    return _relation_key(node.get("database"), node["schema"], node["alias"])


def _fetch_metadata(
    session: Session,
    built: Sequence[Mapping[str, Any]],
    *,
    wanted: WarehouseMetadata,
    column_class,
    storage_kind: str | None,
) -> dict[str, dict[str, Any]]:
    """unique id -> the `dagster/column_schema` and `dagster/row_count` of each built node, in
    dagster-dbt's form: the types are the adapter's `Column.data_type`, as dbt reports them."""
    fetched: dict[str, dict[str, Any]] = {node["unique_id"]: {} for node in built}
    if wanted.columns:
        try:
            schemas = _columns_by_relation(session, built, column_class)
        except Exception:
            logger.warning("The dbt models' columns could not be read", exc_info=True)
        else:
            for node in built:
                columns = schemas.get(_node_key(node))
                if columns:
                    schema = dg.TableSchema(columns=columns)
                    fetched[node["unique_id"]][COLUMN_SCHEMA] = dg.MetadataValue.table_schema(schema)
    counted = [node for node in built if node["config"].get("materialized") != "view"]
    if wanted.row_count and counted:
        # A view's count would run its query.
        union = " union all ".join(
            f"select {position}, count(*) from {node['relation_name']}"
            for position, node in enumerate(counted)
        )
        try:
            counts = session.fetch_all(union)
        except Exception:
            logger.warning("The dbt tables' rows could not be counted", exc_info=True)
        else:
            for position, count in counts:
                added = fetched[counted[position]["unique_id"]]
                added[ROW_COUNT] = dg.MetadataValue.int(count)
                if storage_kind:
                    added[STORAGE_KIND] = dg.MetadataValue.text(storage_kind)
    return fetched


def _marks(session: Session, values: Sequence[object]) -> str:
    return ", ".join(session.placeholder for _ in values)


def _columns_by_relation(
    session: Session, built: Sequence[Mapping[str, Any]], column_class
) -> dict[tuple[str, str, str], list[dg.TableColumn]]:
    """Each relation's columns, in order, from one query of the information schema."""
    schemas = sorted({node["schema"] for node in built})
    names = sorted({node["alias"] for node in built})
    rows = session.fetch_all(
        "select table_catalog, table_schema, table_name, column_name, data_type, "
        "character_maximum_length, numeric_precision, numeric_scale "
        "from information_schema.columns "
        f"where table_schema in ({_marks(session, schemas)}) "
        f"and table_name in ({_marks(session, names)}) "
        "order by table_catalog, table_schema, table_name, ordinal_position",
        [*schemas, *names],
    )
    columns: dict[tuple[str, str, str], list[dg.TableColumn]] = {}
    for database, schema, name, column, data_type, *sizes in rows:
        if session.warehouse.kind == "duckdb":
            # DuckDB's type names carry their precision and scale, and dbt-duckdb reads none of
            # the sizes (its `get_columns_in_relation`): so the types come out as dbt's.
            sizes = [None, None, None]
        data_type = column_class(column, data_type, *sizes).data_type
        columns.setdefault(_relation_key(database, schema, name), []).append(
            dg.TableColumn(name=column, type=data_type or "?")
        )
    return columns


@contextlib.contextmanager
def fetching() -> Iterator[None]:
    """Around the iteration of `dbt_events`: afterwards, the process's working directory is the
    one before it, and the DuckDB database dbt-duckdb kept open in this process is closed.

    dagster-dbt's fetching threads each `pushd` into the dbt project, and two of them at once
    can leave the process in it (a folder a reload deletes). dbt-duckdb keeps the database open
    (`keep_open` is its default); a later step of an in-process run, or the next dbt step, opens
    the file with another configuration, which DuckDB refuses while it is open.
    """
    cwd = os.getcwd()
    try:
        yield
    finally:
        os.chdir(cwd)
        _release_duckdb()


def _release_duckdb() -> None:
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    try:
        environment = DuckDBConnectionManager.env()
    except Exception:
        return  # no DuckDB environment was created in this process
    environment.close()
    DuckDBConnectionManager.close_all_connections()


def column_lineage(shapes: ProjectShapes, unique_id: str) -> dg.TableColumnLineage | None:
    """Each output column of the model and the parents' columns its value is computed from, or
    None when the model's lineage is unknown (no compiled SQL, or a query sqlglot cannot follow)."""
    shape = shapes.shape(unique_id)
    if shape is None or shape.columns is None:
        return None
    keys: dict[str, dg.AssetKey] = {}
    for parent in shapes.parents(unique_id):
        relation, key = shapes.relation(parent), shapes.key_of(parent)
        if relation is not None and key is not None:
            keys[relation] = key
    deps_by_column: dict[str, list[dg.TableColumnDep]] = {}
    for column in shape.columns:
        deps = [
            dg.TableColumnDep(asset_key=keys[relation], column_name=name)
            for relation, names in sorted(shape.column_sources.get(column, {}).items())
            if relation in keys
            for name in sorted(names)
        ]
        if deps:
            deps_by_column[column] = deps
    return dg.TableColumnLineage(deps_by_column) if deps_by_column else None


def _parent_ids(shapes: ProjectShapes, unique_id: str) -> dict[str, str]:
    """relation (as the model's shape names it) -> parent unique id."""
    ids = {}
    for parent in shapes.parents(unique_id):
        relation = shapes.relation(parent)
        if relation is not None:
            ids[relation] = parent
    return ids


def traced_columns(shapes: ProjectShapes, unique_id: str, column: str) -> list[list[str]]:
    """The columns `column` is computed from, one list per generation of ancestors (parents,
    grandparents, ...), each as `asset.column`, followed through every model the lineage knows
    and ending at seeds, sources and models it cannot follow."""
    generations: list[list[str]] = []
    current = {(unique_id, column)}
    seen: set[tuple[str, str]] = set()
    while current:
        following: set[tuple[str, str]] = set()
        for node, name in current:
            shape = shapes.shape(node)
            if shape is None:
                continue
            parents = _parent_ids(shapes, node)
            for relation, names in shape.column_sources.get(name, {}).items():
                parent = parents.get(relation)
                if parent is not None and shapes.key_of(parent) is not None:
                    following |= {(parent, source) for source in names}
        following -= seen
        seen |= following
        if following:
            generations.append(
                sorted(f"{shapes.key_of(node).to_user_string()}.{name}" for node, name in following)
            )
        current = following
    return generations


def lineage_markdown(shapes: ProjectShapes, unique_id: str) -> str | None:
    """The model's column lineage as a table a person reads in the UI: each column, the parents'
    columns it is computed from, and the ancestors' columns behind those."""
    shape = shapes.shape(unique_id)
    if shape is None or shape.columns is None:
        return None
    rows = []
    for column in shape.columns:
        generations = traced_columns(shapes, unique_id, column)
        if not generations:
            continue
        direct = ", ".join(generations[0])
        behind = "; ".join(", ".join(generation) for generation in generations[1:]) or "-"
        rows.append(f"| `{column}` | {direct} | {behind} |")
    if not rows:
        return None
    return "\n".join(["| Column | Computed from | Traced back to |", "| --- | --- | --- |", *rows])


def _with_descriptions(fetched: dg.TableSchema, documented: dg.TableSchema | None) -> dg.TableSchema:
    """The warehouse's columns, in its order and with its types, and the documented columns'
    descriptions and tags (by case-insensitive name)."""
    if documented is None:
        return fetched
    docs = {column.name.lower(): column for column in documented.columns}
    columns = []
    for column in fetched.columns:
        doc = docs.get(column.name.lower())
        if doc is not None:
            column = dg.TableColumn(
                name=column.name,
                type=column.type,
                description=doc.description,
                constraints=doc.constraints,
                tags=doc.tags,
            )
        columns.append(column)
    return dg.TableSchema(columns=columns, constraints=fetched.constraints)


def _value(entry):
    return getattr(entry, "value", entry)


def _schema(entry) -> dg.TableSchema | None:
    value = _value(entry)
    return value if isinstance(value, dg.TableSchema) else None


def with_materialization_metadata(context: dg.AssetExecutionContext, event):
    """`event` (an output or materialization of a dbt run) with its column lineage, its schema's
    documented descriptions, and, in an automation run, `autopilot/explain`."""
    if isinstance(event, dg.Output):
        key = context.asset_key_for_output(event.output_name)
    elif isinstance(event, dg.AssetMaterialization):
        key = event.asset_key
    else:
        return event
    spec = context.assets_def.specs_by_key[key]
    added: dict[str, object] = {}
    fetched = _schema(event.metadata.get(COLUMN_SCHEMA))
    if fetched is not None:
        added[COLUMN_SCHEMA] = dg.MetadataValue.table_schema(
            _with_descriptions(fetched, _schema(spec.metadata.get(COLUMN_SCHEMA)))
        )
    model = model_of(key, spec.metadata)
    if model is not None:
        lineage = column_lineage(*model)
        if lineage is not None:
            added[COLUMN_LINEAGE] = dg.MetadataValue.column_lineage(lineage)
            # Dagster's open-source UI does not display `dagster/column_lineage`: this table does.
            table = lineage_markdown(*model)
            if table is not None:
                added[LINEAGE_TABLE_METADATA] = dg.MetadataValue.md(table)
    added.update(explain_metadata(context, key))
    if not added:
        return event
    return event.with_metadata({**event.metadata, **added})
