"""The automation conditions the library assigns, built only from Dagster's built-in operands.

Built-in conditions are evaluated by the daemon itself, so they need no user-code server and no
500-asset sensor limit. Each named piece carries a comment that says why it is shaped as it is.
"""

from __future__ import annotations

import dagster as dg

from dagster_autopilot.automation.policy import AutomationPolicy

AC = dg.AutomationCondition

# Every asset built by the library carries its dbt materialization under this tag, so selections
# such as `tag:dagster/materialization=table` follow the real config rather than folder names.
MATERIALIZATION_TAG = "dagster/materialization"

# Views store no data: a table that reads through a view really depends on the view's parents.
VIEWS = dg.AssetSelection.tag(MATERIALIZATION_TAG, "view")

# A parent counts as updated when it materialized since the last tick in a run that did not also
# build this asset (that run already used the new data), or when it is requested on this very tick
# (so the parent and this asset go out in one run instead of two).
PARENT_UPDATED = (
    AC.newly_updated() & ~AC.executed_with_root_target() | AC.will_be_requested()
).with_label("parent_updated")

# Requests wait while this asset or a parent is being built: a second run would overlap the first,
# and a child built before its parent finishes would read stale data.
NOT_BUSY = (~AC.in_progress() & ~AC.any_deps_in_progress()).with_label("not_busy")

# A missing parent would make the build fail; it is built first (or in the same run).
PARENTS_PRESENT = (~AC.any_deps_missing()).with_label("parents_present")

# Dagster's `code_version_changed()` is true for one tick only. Remembering it until the asset next
# materializes means a failed or cancelled run does not lose the change.
CODE_CHANGED = AC.code_version_changed().since(AC.newly_updated()).with_label("code_changed")

# Resets when this asset's request was handled: it was requested, or it materialized anyway.
HANDLED = (AC.newly_requested() | AC.newly_updated()).with_label("handled")


def upstream_updated(view_depth: int) -> dg.AutomationCondition:
    """A parent was updated, or, through up to `view_depth` views, a parent of those views.

    Not `newly_updated()` on the asset itself: that would re-request the asset after every one of its
    own materializations.
    """
    level: dg.AutomationCondition = AC.any_deps_match(PARENT_UPDATED)
    condition = level
    for _ in range(view_depth):
        level = AC.any_deps_match(level).allow(VIEWS)
        condition = condition | level
    return condition.with_label("upstream_updated")


def stale(view_depth: int) -> dg.AutomationCondition:
    """Missing, its code changed, or upstream data changed since it last materialized.

    This is seed 001's deterministic staleness: input changed or code changed, never time alone.
    """
    upstream_changed = upstream_updated(view_depth).since(AC.newly_updated())
    return (AC.missing() | CODE_CHANGED | upstream_changed.with_label("upstream_changed")).with_label(
        "stale"
    )


def on_change(view_depth: int) -> dg.AutomationCondition:
    """Rebuild as soon as the asset is stale, never while it or a parent is running."""
    return (stale(view_depth) & NOT_BUSY & PARENTS_PRESENT).with_label("on_change")


def on_cron(policy: AutomationPolicy, view_depth: int) -> dg.AutomationCondition:
    """At the first tick after each cron time, rebuild if stale (or always), when not busy.

    Unlike Dagster's `on_cron()`, it does not wait for every parent to update after the cron tick:
    views only update when their code or parents change, so a table under `on_cron()` would wait
    forever. The decision taken at the cron tick is remembered until the request is handled, so a
    table that is busy at 06:00 is built once its run or its parents finish.
    """
    assert policy.cron is not None
    tick = AC.cron_tick_passed(policy.cron, policy.timezone)
    trigger = tick if policy.rebuild == "always" else tick & stale(view_depth)
    due = trigger.since(HANDLED).with_label(f"cron_due({policy.cron}, {policy.timezone})")
    return (due & NOT_BUSY & PARENTS_PRESENT).with_label("on_cron")


def condition_for(policy: AutomationPolicy, view_depth: int) -> dg.AutomationCondition | None:
    """The condition that carries out `policy`; None opts the asset out of automation."""
    if not policy.enabled:
        return None
    if policy.is_cron:
        return on_cron(policy, view_depth)
    return on_change(view_depth)
