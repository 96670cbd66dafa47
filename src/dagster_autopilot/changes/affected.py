"""Which columns a materialization changed, recorded on it, and whether a child can see them.

Every materialization of a dbt model records three metadata entries:
- `autopilot/shape`: the model's column shape, which the next materialization compares with;
- `autopilot/change`: the category of its own code change since its previous materialization
  (`missing` for a first build, `unchanged` when its SQL is the same);
- `autopilot/affected_columns`: the output columns whose values may have changed, `*` for all.

Only a rebuild explained by code changes alone gets a column list: its own change's columns, and
the columns its parents' column-limited changes reach through its lineage. Anything else (a first
build, a parent without the metadata such as a seed or a Python asset, new data behind a view, a
rebuild nothing explains) affects every column, as before column awareness.

A child counts a parent's update only when it reads one of the parent's affected columns
(`sees_update`). Fail safe throughout: whatever cannot be proved unaffected is affected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import dagster as dg

from dagster_autopilot.changes.lineage import (
    ALL,
    Change,
    Columns,
    ModelShape,
    affected_outputs,
    categorize,
    reads_any,
)
from dagster_autopilot.changes.project import ProjectShapes, model_of

SHAPE_METADATA = "autopilot/shape"
CHANGE_METADATA = "autopilot/change"
AFFECTED_METADATA = "autopilot/affected_columns"

# `autopilot/change` categories besides the four of `lineage.categorize`: a model's first build,
# and a rebuild whose own SQL did not change.
MISSING = "missing"
UNCHANGED = "unchanged"

# The tag Dagster stamps on every materialization: the code version the asset was built with.
CODE_VERSION_TAG = "dagster/code_version"

# Materializations of one parent read back since a point; more than this many counts as "all".
_EVENTS_READ = 100


def _as_json(entry):
    """The JSON value of a metadata entry (recorded as JSON; text holding JSON is read too)."""
    if isinstance(entry, dg.TextMetadataValue):
        return json.loads(entry.value)
    return getattr(entry, "value", entry)


def affected_in(metadata: Mapping[str, object] | None) -> Columns:
    """The affected columns a materialization recorded; every column when it recorded none."""
    entry = (metadata or {}).get(AFFECTED_METADATA)
    if entry is None:
        return ALL
    value = _as_json(entry)
    return ALL if value == ALL or not isinstance(value, list) else frozenset(value)


def union(parts: Iterable[Columns]) -> Columns:
    """All the columns of `parts`; every column if any part is every column."""
    columns: set[str] = set()
    for part in parts:
        if part == ALL:
            return ALL
        columns |= part
    return frozenset(columns)


def columns_json(columns: Columns) -> object:
    return ALL if columns == ALL else sorted(columns)


def affected_since(instance: dg.DagsterInstance, key: dg.AssetKey, after_storage_id: int) -> Columns:
    """The columns of `key` that its materializations after `after_storage_id` affected."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after_storage_id), limit=_EVENTS_READ
    ).records
    if len(records) >= _EVENTS_READ:
        return ALL
    return union(affected_in(record.asset_materialization.metadata) for record in records)


def _updated_since(instance: dg.DagsterInstance, key: dg.AssetKey, after_storage_id: int) -> bool:
    filter_ = dg.AssetRecordsFilter(asset_key=key, after_storage_id=after_storage_id)
    return bool(instance.fetch_materializations(filter_, limit=1).records)


def _data_behind_view_updated(
    instance: dg.DagsterInstance, shapes: ProjectShapes, view: str, after_storage_id: int
) -> bool:
    """Whether a real asset behind a chain of views materialized (new data the views pass on)."""
    pending, seen = list(shapes.parents(view)), set()
    while pending:
        unique_id = pending.pop()
        if unique_id in seen:
            continue
        seen.add(unique_id)
        if shapes.is_view(unique_id):
            pending.extend(shapes.parents(unique_id))
            continue
        key = shapes.key_of(unique_id)
        if key is None or _updated_since(instance, key, after_storage_id):
            return True
    return False


def _affected_parents(
    instance: dg.DagsterInstance, shapes: ProjectShapes, unique_id: str, after_storage_id: int
) -> dict[str, Columns]:
    """For each parent relation updated since `after_storage_id`: the columns it affected."""
    affected: dict[str, Columns] = {}
    for parent in shapes.parents(unique_id):
        relation = shapes.relation(parent) or parent
        key = shapes.key_of(parent)
        if key is None:
            affected[relation] = ALL  # not an asset we know: assume it changed everything
            continue
        columns = affected_since(instance, key, after_storage_id)
        if shapes.is_view(parent) and _data_behind_view_updated(
            instance, shapes, parent, after_storage_id
        ):
            columns = ALL
        if columns:
            affected[relation] = columns
    return affected


def _previous_materialization(instance: dg.DagsterInstance, key: dg.AssetKey):
    records = instance.fetch_materializations(key, limit=1).records
    return records[0] if records else None


def change_metadata(
    instance: dg.DagsterInstance, key: dg.AssetKey, spec: dg.AssetSpec
) -> dict[str, object]:
    """The metadata to record on a materialization of `key` (built as `spec`), about to be stored.

    A code version that changed while the shape did not (a build config such as the
    materialization) affects every column.
    """
    code_version = spec.code_version
    entry = model_of(key, spec.metadata)
    if entry is None:
        return {AFFECTED_METADATA: dg.MetadataValue.json(ALL)}
    shapes, unique_id = entry
    shape = shapes.shape(unique_id)
    previous = _previous_materialization(instance, key)
    previous_metadata = previous.asset_materialization.metadata if previous else {}
    before = previous_metadata.get(SHAPE_METADATA)
    change = categorize(ModelShape.from_metadata(_as_json(before)) if before else None, shape)
    previous_version = (
        (previous.asset_materialization.tags or {}).get(CODE_VERSION_TAG) if previous else None
    )
    if change.category == "metadata_only" and previous_version != code_version and code_version:
        change = Change("unknown", ALL)
    affected = _affected_columns(instance, shapes, unique_id, shape, change, previous)
    category = change.category
    if previous is None:
        category = MISSING  # its first build
    elif category == "metadata_only":
        category = UNCHANGED  # same SQL: rebuilt for its parents, a schedule, or by hand
    metadata: dict[str, object] = {
        CHANGE_METADATA: dg.MetadataValue.json(
            {"category": category, "columns": columns_json(change.columns)}
        ),
        AFFECTED_METADATA: dg.MetadataValue.json(columns_json(affected)),
    }
    if shape is not None:
        metadata[SHAPE_METADATA] = dg.MetadataValue.json(shape.to_metadata())
    return metadata


def with_change_metadata(context: dg.AssetExecutionContext, event):
    """`event` (an output or materialization a run yields) with `change_metadata` added."""
    if isinstance(event, dg.Output):
        key = context.asset_key_for_output(event.output_name)
    elif isinstance(event, dg.AssetMaterialization):
        key = event.asset_key
    else:
        return event
    spec = context.assets_def.specs_by_key[key]
    return event.with_metadata({**event.metadata, **change_metadata(context.instance, key, spec)})


def _affected_columns(
    instance: dg.DagsterInstance,
    shapes: ProjectShapes,
    unique_id: str,
    shape: ModelShape | None,
    change: Change,
    previous,
) -> Columns:
    if previous is None:
        return ALL  # a first build: everything is new to its children
    parents = _affected_parents(instance, shapes, unique_id, previous.storage_id)
    code_changed = change.category != "metadata_only"
    if not parents and not code_changed:
        # Rebuilt with neither a code change nor a parent update (by hand, on a schedule, after a
        # TTL): its sources may hold new data.
        return ALL
    from_parents = affected_outputs(shape, parents) if parents else frozenset()
    return union([change.columns if code_changed else frozenset(), from_parents])


def _model_pair(
    child: dg.AssetKey, child_metadata, parent: dg.AssetKey
) -> tuple[ProjectShapes, str, str] | None:
    """(shapes, child id, parent id) when `parent` is a model that `child` reads directly."""
    entry = model_of(child, child_metadata)
    if entry is None:
        return None
    shapes, child_id = entry
    for parent_id in shapes.parents(child_id):
        if shapes.key_of(parent_id) == parent:
            # A seed's or a source's update is new data: every column, as before column awareness.
            is_model = (shapes.node(parent_id) or {}).get("resource_type") == "model"
            return (shapes, child_id, parent_id) if is_model else None
    # An asset behind a chain of views: its columns are not mapped through the views.
    return None


def is_column_aware(child: dg.AssetKey, child_metadata, parent: dg.AssetKey) -> bool:
    """Whether `sees_update` can tell for this pair: models of one project, read directly."""
    return _model_pair(child, child_metadata, parent) is not None


def sees_update(
    instance: dg.DagsterInstance,
    child: dg.AssetKey,
    child_metadata,
    parent: dg.AssetKey,
    after_storage_id: int,
    latest_metadata: Mapping[str, object] | None = None,
) -> bool:
    """Whether `parent`'s materializations after `after_storage_id` changed a column `child` reads.

    True unless the pair is column-aware (`is_column_aware`) and the parent's recorded affected
    columns are provably not read by `child` (`child_metadata` is its spec's metadata).
    `latest_metadata`, the metadata of the parent's latest materialization when the caller has it
    at hand, spares the query and the lineage for the common case: new data, every column.
    """
    pair = _model_pair(child, child_metadata, parent)
    if pair is None:
        return True
    if latest_metadata is not None and affected_in(latest_metadata) == ALL:
        return True
    shapes, child_id, parent_id = pair
    relation = shapes.relation(parent_id)
    if relation is None:
        return True
    columns = affected_since(instance, parent, after_storage_id)
    if columns == ALL:
        return True
    return reads_any(shapes.shape(child_id), relation, columns)
