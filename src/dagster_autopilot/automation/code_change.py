"""`CodeChangeUnbuilt`: the asset's code changed, and no run that started after the change built it.

Dagster's `code_version_changed()` is true for one tick; `.since(newly_updated())` remembers it
until the next materialization, whichever run made it. A run that started under the old code and
finishes after a deploy (dagster#33708) materializes the asset after the change, possibly stamped
with the new code version, yet it ran the old code. So the change is remembered here until a
materialization from a run planned after the change is seen: the node's cursor keeps the code
version and the event-log storage id at which the change was first seen, and a run counts only if
its `ASSET_MATERIALIZATION_PLANNED` event for the asset came later. Storage ids, not clocks: they
order events in one instance whatever the machines' clocks say.
"""

import json
from dataclasses import dataclass

import dagster as dg
from dagster import AutomationContext, AutomationResult

from dagster_autopilot.automation import labels

# Materializations (and plans) read after a change; more means many runs since, any of them will do.
_EVENTS_READ = 100


def built_after_change(instance: dg.DagsterInstance, key: dg.AssetKey, changed_at: int, last) -> bool:
    """Whether a run planned after storage id `changed_at` materialized `key`.

    `last` is the asset's latest materialization record (from the cached asset record). A
    materialization without a run (reported by hand) counts: it says the asset is up to date.
    """
    if last is None or last.storage_id <= changed_at:
        return False
    if not last.run_id:
        return True
    latest_plan = instance.event_log_storage.get_latest_planned_materialization_info(key)
    if latest_plan is not None and latest_plan.run_id == last.run_id:
        return latest_plan.storage_id > changed_at
    # Another run planned the asset since: look at every materialization since the change.
    since_change = dg.AssetRecordsFilter(asset_key=key, after_storage_id=changed_at)
    planned_after = {
        record.run_id
        for record in instance.fetch_planned_materializations(since_change, limit=_EVENTS_READ).records
    }
    materializations = instance.fetch_materializations(since_change, limit=_EVENTS_READ).records
    return any(not record.run_id or record.run_id in planned_after for record in materializations)


@dataclass(frozen=True)
class CodeChangeUnbuilt(dg.AutomationCondition):
    """True from the tick its code version changes until a run planned after that builds it."""

    @property
    def name(self) -> str:
        return "code_change_unbuilt"

    @property
    def description(self) -> str:
        return "Code version changed, not yet built by a run that started after the change"

    def get_label(self) -> str:
        return labels.CODE_CHANGED

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        code_version = context.asset_graph.get(context.key).code_version
        state = json.loads(context.cursor) if context.cursor else None
        if state is None:  # the first tick has nothing to compare with, as code_version_changed()
            state = {"code_version": code_version, "unbuilt": False, "changed_at": None}
        elif state["code_version"] != code_version:
            changed_at = context.max_storage_id or 0
            state = {"code_version": code_version, "unbuilt": True, "changed_at": changed_at}
        elif state["unbuilt"]:
            queryer = context.asset_graph_view.get_inner_queryer_for_back_compat()
            record = queryer.get_asset_record(context.key)
            last = record.asset_entry.last_materialization_record if record else None
            instance = context.asset_graph_view.instance
            if built_after_change(instance, context.key, state["changed_at"], last):
                state = {**state, "unbuilt": False}
        true_subset = context.candidate_subset if state["unbuilt"] else context.get_empty_subset()
        return AutomationResult(context, true_subset, cursor=json.dumps(state))
