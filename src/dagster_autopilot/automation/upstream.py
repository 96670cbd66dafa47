"""`UpstreamUpdated`: a parent's data changed, seen through views, in one condition node.

Views store no data, so a table that reads through views depends on the data behind them. The
library marks dbt views as Dagster virtual assets, and this operand looks at, for the asset it
evaluates:
- every parent that is a view (its SQL may have changed), and
- every real asset behind the asset's chains of views (Dagster's `get_non_virtual_ancestor_keys`),
  direct real parents included.

Each of those counts as updated as Dagster's `any_deps_updated()` counts a parent: it materialized
since the previous tick in a run that did not also build this asset (that run already used the new
data), or it is requested on this very tick and can run in the same run.

Column awareness: when both assets are dbt models of one project (`changes/affected.py`), a direct
parent's materialization counts only if it changed a column this asset reads; a parent requested on
this tick for a code change is not counted until it has run and recorded which columns it changed.

Why not `any_deps_match(...).resolve_through_virtual() | any_deps_match(...).allow(views)`, which
says the same: Dagster gives every dependency an `EntityMatches` subtree of seven nodes, and hashes
and serializes every node of every asset into the sensor cursor on each tick. Through deep view
chains that costs more than the rest of the tick at 1,000 assets; this single node keeps the cursor
small.
"""

import weakref
from dataclasses import dataclass

import dagster as dg
from dagster import AutomationContext, AutomationResult

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation import labels
from dagster_autopilot.changes.affected import CODE_VERSION_TAG, is_column_aware, sees_update

# Node metadata: the upstream assets that made the condition true (the first few, sorted).
UPDATED_UPSTREAM = "updated_upstream"
_UPDATED_SHOWN = 10


# Per asset graph (one per load of the definitions): each asset's upstream keys, read on every
# evaluation of every asset.
_upstream_cache: "weakref.WeakKeyDictionary[object, dict[dg.AssetKey, frozenset]]" = (
    weakref.WeakKeyDictionary()
)


def upstream_keys(asset_graph, key: dg.AssetKey) -> frozenset[dg.AssetKey]:
    """The view parents of `key`, and the real assets behind its chains of views."""
    try:
        cached = _upstream_cache.setdefault(asset_graph, {})
    except TypeError:  # an asset graph that takes no weak reference: computed every time
        cached = {}
    if key not in cached:
        node = asset_graph.get(key)
        views = {parent for parent in node.parent_entity_keys if asset_graph.get(parent).is_virtual}
        cached[key] = frozenset(views | set(asset_graph.get_non_virtual_ancestor_keys(key)))
    return cached[key]


@dataclass(frozen=True)
class UpstreamUpdated(dg.AutomationCondition):
    """True when a parent (a view, or any real asset behind the asset's views) was updated."""

    @property
    def name(self) -> str:
        return labels.UPSTREAM_UPDATED

    @property
    def description(self) -> str:
        return "A parent, or data behind a parent view, updated since the previous tick"

    @property
    def requires_cursor(self) -> bool:
        return False

    def get_label(self) -> str:
        return labels.UPSTREAM_UPDATED

    async def evaluate(self, context: AutomationContext) -> AutomationResult:  # type: ignore[override]
        true_subset = context.get_empty_subset()
        if context.candidate_subset.is_empty:
            return AutomationResult(context, true_subset)
        updated: list[dg.AssetKey] = []
        keys = sorted(upstream_keys(context.asset_graph, context.key))
        # The tick prefetches the records of the evaluated assets and their parents; the assets
        # behind views (another sensor's, say) are read here in one query rather than one each.
        queryer = context.asset_graph_view.get_inner_queryer_for_back_compat()
        queryer.prefetch_asset_records(keys)
        for upstream in keys:
            candidates = context.candidate_subset.compute_mapped_subset(upstream, direction="up")
            if candidates.is_empty:
                continue
            upstream_true = await _updated_for(context, upstream, candidates)
            if not upstream_true.is_empty:
                updated.append(upstream)
                true_subset = true_subset.compute_union(
                    upstream_true.compute_mapped_subset(context.key, direction="down")
                )
        true_subset = true_subset.compute_intersection(context.candidate_subset)
        if true_subset.is_empty:
            return AutomationResult(context, true_subset)
        shown = ", ".join(key.to_user_string() for key in updated[:_UPDATED_SHOWN])
        more = len(updated) - _UPDATED_SHOWN
        text = shown + (f" and {more} more" if more > 0 else "")
        return AutomationResult(
            context, true_subset, metadata={UPDATED_UPSTREAM: dg.MetadataValue.text(text)}
        )


async def _updated_for(context: AutomationContext, upstream: dg.AssetKey, candidates):
    """The part of `candidates` (a subset of `upstream`) that counts as updated for this asset."""
    view = context.asset_graph_view
    graph = context.asset_graph
    # Requested on this tick, and buildable in the same run as this asset.
    requested = context.request_subsets_by_key.get(upstream)
    metadata = graph.get(context.key).metadata
    column_aware = is_column_aware(context.key, metadata, upstream)
    if (
        requested is not None
        and graph.get(upstream).is_materializable
        and internals.executable_in_same_run(
            asset_graph=graph, child_key=context.key, parent_key=upstream
        )
        and not (column_aware and _code_change_pending(context, upstream))
    ):
        result = requested.compute_intersection(candidates)
    else:
        result = view.get_empty_subset(key=upstream)
    if context.previous_temporal_context is None:  # the first tick has no "since"
        return result
    newly = await view.compute_updated_since_temporal_context_subset(
        key=upstream, temporal_context=context.previous_temporal_context
    )
    newly = newly.compute_intersection(candidates)
    if newly.is_empty:
        return result

    def built_with_this_asset(run_record) -> bool:
        run = run_record.dagster_run
        return context.key in (run.asset_selection or set()) | (run.asset_check_selection or set())

    with_this_asset = await view.compute_latest_run_matches_subset(
        from_subset=newly, filter_fn=built_with_this_asset
    )
    newly = newly.compute_difference(with_this_asset)
    if (
        column_aware
        and not newly.is_empty
        and not sees_update(
            view.instance,
            context.key,
            metadata,
            upstream,
            context.previous_temporal_context.last_event_id,
            latest_metadata=_latest_materialization_metadata(context, upstream),
        )
    ):
        return result
    return result.compute_union(newly)


def _latest_materialization(context: AutomationContext, key: dg.AssetKey):
    """The latest materialization of `key`, from the tick's cached asset records (no query)."""
    queryer = context.asset_graph_view.get_inner_queryer_for_back_compat()
    record = queryer.get_asset_record(key)
    last = record.asset_entry.last_materialization if record else None
    return last.asset_materialization if last else None


def _latest_materialization_metadata(context: AutomationContext, key: dg.AssetKey):
    materialization = _latest_materialization(context, key)
    return materialization.metadata if materialization else None


def _code_change_pending(context: AutomationContext, upstream: dg.AssetKey) -> bool:
    """Whether `upstream`'s code version differs from the one it was last built with.

    Such a parent is rebuilt for its code; which of its columns that changes is known once it has
    run, so a column-aware child waits for that materialization instead of joining its run.
    """
    materialization = _latest_materialization(context, upstream)
    built_with = (materialization.tags or {}).get(CODE_VERSION_TAG) if materialization else None
    return built_with != context.asset_graph.get(upstream).code_version
