"""`PlannedInActiveRun`: Dagster's `run_in_progress()`, with one query per tick instead of one per asset.

Dagster decides whether an unpartitioned asset is in progress from the latest run that planned it
(its latest `ASSET_MATERIALIZATION_PLANNED` event): in progress when that run is queued or running
and has not materialized it yet. Open-source storage keeps no latest plan per asset, so each asset
costs an event-log query, every tick, for every asset whose trigger is true and for each of its
parents: a third of a busy tick at 1,000 models.

An asset whose latest plan is in a run that has not finished was planned by such a run. So the tick
first lists the runs that have not finished (one query, usually a handful) and the assets they
planned (one query each). An asset none of them planned is not in progress, exactly as Dagster
would find; for an asset one of them planned, Dagster's own check decides. Partitioned assets and
asset checks use Dagster's operand directly.
"""

import weakref
from dataclasses import dataclass

import dagster as dg
from dagster import AutomationContext, AutomationResult

from dagster_autopilot import _dagster_internals as internals

# Per tick (Dagster builds one asset graph view per evaluation): the assets planned by runs that
# have not finished.
_planned_by_active_runs: "weakref.WeakKeyDictionary[object, frozenset[dg.AssetKey]]" = (
    weakref.WeakKeyDictionary()
)


def planned_by_active_runs(instance: dg.DagsterInstance) -> frozenset[dg.AssetKey]:
    """The assets planned by runs that have not finished (queued, starting, running, canceling)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=internals.NOT_FINISHED_STATUSES))
    planned: set[dg.AssetKey] = set()
    for run in runs:
        records = instance.event_log_storage.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
        planned.update(
            record.event_log_entry.dagster_event.asset_key
            for record in records
            if record.event_log_entry.dagster_event is not None
        )
    return frozenset(planned)


@dataclass(frozen=True)
class PlannedInActiveRun(dg.AutomationCondition):
    """True for an asset planned by a run that is queued or in progress and has not built it yet."""

    @property
    def name(self) -> str:
        return "run_in_progress"

    @property
    def description(self) -> str:
        return "Targeted by an in-progress run"

    @property
    def requires_cursor(self) -> bool:
        return False

    async def evaluate(self, context: AutomationContext) -> AutomationResult:  # type: ignore[override]
        view = context.asset_graph_view
        key = context.key
        if context.candidate_subset.is_empty:
            return AutomationResult(context, context.get_empty_subset())
        batched = isinstance(key, dg.AssetKey) and context.asset_graph.get(key).partitions_def is None
        if batched:
            planned = _planned_by_active_runs.get(view)
            if planned is None:
                planned = _planned_by_active_runs[view] = planned_by_active_runs(view.instance)
            if key not in planned:
                return AutomationResult(context, context.get_empty_subset())
        in_progress = await view.compute_run_in_progress_subset(
            key=key, from_subset=context.candidate_subset
        )
        return AutomationResult(context, in_progress)
