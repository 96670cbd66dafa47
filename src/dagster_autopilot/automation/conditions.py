"""The automation conditions the library assigns: Dagster's built-in operands plus three guardrails.

The freshness, quiet-hours and backoff guardrails (`guardrails.py`) are custom conditions, so the
sensors evaluate in the user-code server. Each named piece carries a comment that says why it is
shaped as it is. The labels `missing`, `code_changed`, `deps_updated`, `cron` and `expired` are the
reasons the audit trail reads back from each evaluation.
"""

import functools
import threading
from collections.abc import Set as AbstractSet

import dagster as dg
from dagster._core.definitions.asset_selection import TagAssetSelection

from dagster_autopilot.automation.guardrails import BackoffAllows, Expired, OutsideQuietHours
from dagster_autopilot.automation.policy import AutomationPolicy

AC = dg.AutomationCondition

# Every asset built by the library carries its dbt materialization under this tag, so selections
# such as `tag:dagster/materialization=table` follow the real config rather than folder names.
MATERIALIZATION_TAG = "dagster/materialization"

# The reasons an automation run can carry, in the order they are reported.
REASONS = ("missing", "code_changed", "deps_updated", "cron", "expired")


class _ViewsOfGraph(TagAssetSelection):
    """`tag:dagster/materialization=view`, resolved once per asset graph.

    Dagster resolves a dependency condition's `allow()` selection at every evaluation: with the
    plain tag selection that is a scan of the whole graph per asset (quadratic, once the top cost
    of a tick at 1,000 assets).
    """

    def resolve_inner(self, asset_graph, allow_missing: bool) -> AbstractSet[dg.AssetKey]:
        cached = _VIEW_KEYS.get(id(asset_graph))
        if cached is None or cached[0] is not asset_graph:
            cached = (asset_graph, frozenset(super().resolve_inner(asset_graph, allow_missing)))
            with _VIEW_KEYS_LOCK:
                if len(_VIEW_KEYS) > 8:  # a few graphs live at once (reloads); never grow
                    _VIEW_KEYS.clear()
                _VIEW_KEYS[id(asset_graph)] = cached
        return cached[1]


_VIEW_KEYS: dict[int, tuple[object, frozenset[dg.AssetKey]]] = {}
_VIEW_KEYS_LOCK = threading.Lock()

# The views of the graph (the library also marks them as virtual assets).
VIEWS = _ViewsOfGraph(key=MATERIALIZATION_TAG, value="view", include_sources=False)

# A parent counts as updated when it materialized since the last tick in a run that did not also
# build this asset (that run already used the new data), or when it is requested on this very tick
# (so the parent and this asset go out in one run instead of two).
PARENT_UPDATED = (
    AC.newly_updated() & ~AC.executed_with_root_target() | AC.will_be_requested()
).with_label("parent_updated")

# Requests wait while this asset or a parent is being built (queued runs included): a second run
# would overlap the first, and a child built before its parent finishes would read stale data.
NOT_BUSY = (~AC.in_progress() & ~AC.any_deps_in_progress()).with_label("not_busy")

# A missing parent would make the build fail; it is built first (or in the same run).
PARENTS_PRESENT = (~AC.any_deps_missing()).with_label("parents_present")

MISSING = AC.missing().with_label("missing")

# Dagster's `code_version_changed()` is true for one tick only. Remembering it until the asset next
# materializes means a failed or cancelled run does not lose the change.
CODE_CHANGED = AC.code_version_changed().since(AC.newly_updated()).with_label("code_changed")

# Resets when this asset's request was handled: it was requested, or it materialized anyway.
HANDLED = (AC.newly_requested() | AC.newly_updated()).with_label("handled")


# A parent was updated; for a parent that is a view, also any real (non-view) asset behind it.
# Views store no data: a table that reads through a view really depends on the view's parents,
# and on the view itself only for its SQL. The library marks dbt views as Dagster virtual assets,
# so `resolve_through_virtual()` walks every chain of views in one dependency operator, where
# nesting one `any_deps_match` per view level cost a tick 6x eager's time on deep view chains.
# Not `newly_updated()` on the asset itself: that would re-request the asset after every one of
# its own materializations.
UPSTREAM_UPDATED = (
    AC.any_deps_match(PARENT_UPDATED).resolve_through_virtual()
    | AC.any_deps_match(PARENT_UPDATED).allow(VIEWS)
).with_label("upstream_updated")

# Seed 001's deterministic staleness: missing, its code changed, or upstream data changed since it
# last materialized; never time alone (a TTL is an explicit, separate `freshness` trigger).
STALE = (
    MISSING | CODE_CHANGED | UPSTREAM_UPDATED.since(AC.newly_updated()).with_label("deps_updated")
).with_label("stale")


def _guards(policy: AutomationPolicy) -> list[dg.AutomationCondition]:
    # Cheap built-ins first; the guardrails that query the instance last, so they only run for
    # the assets that every earlier operand let through.
    guards = [NOT_BUSY, PARENTS_PRESENT]
    window = policy.quiet_window
    if window is not None:
        guards.append(OutsideQuietHours(*window))
    backoff = policy.backoff
    guards.append(BackoffAllows(backoff.base_seconds, backoff.cap_seconds, backoff.max_failures))
    return guards


def _with_expiry(trigger: dg.AutomationCondition, policy: AutomationPolicy) -> dg.AutomationCondition:
    if policy.freshness is None:
        return trigger
    return trigger | Expired(policy.freshness.ttl_seconds)


def _all(parts: list[dg.AutomationCondition], label: str) -> dg.AutomationCondition:
    condition = parts[0]
    for part in parts[1:]:
        condition = condition & part
    return condition.with_label(label)


def on_change(policy: AutomationPolicy) -> dg.AutomationCondition:
    """Rebuild as soon as the asset is stale (or expired), never while it or a parent is running."""
    trigger = _with_expiry(STALE, policy)
    return _all([trigger, *_guards(policy)], "on_change")


def on_cron(policy: AutomationPolicy) -> dg.AutomationCondition:
    """At the first tick after each cron time, rebuild if stale (or always), when not busy.

    Unlike Dagster's `on_cron()`, it does not wait for every parent to update after the cron tick:
    views only update when their code or parents change, so a table under `on_cron()` would wait
    forever. The decision taken at the cron tick is remembered until the request is handled, so a
    table that is busy at 06:00 is built once its run or its parents finish.
    """
    assert policy.cron is not None
    tick = AC.cron_tick_passed(policy.cron, policy.timezone)
    trigger = tick if policy.rebuild == "always" else tick & STALE
    due = trigger.since(HANDLED).with_label("cron")
    return _all([_with_expiry(due, policy), *_guards(policy)], "on_cron")


@functools.lru_cache(maxsize=4096)
def _condition_for(policy_json: str) -> dg.AutomationCondition | None:
    policy = AutomationPolicy.model_validate_json(policy_json)
    if not policy.enabled:
        return None
    if policy.is_cron:
        return on_cron(policy)
    return on_change(policy)


def condition_for(policy: AutomationPolicy) -> dg.AutomationCondition | None:
    """The condition that carries out `policy`; None opts the asset out of automation.

    Memoized on the policy: assets with the same policy share one condition object, which spares
    building a tree per asset at load time.
    """
    return _condition_for(policy.model_dump_json())
