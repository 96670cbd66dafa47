"""The automation conditions the library assigns: Dagster's built-in operands plus six of our own.

Every automated asset gets one trigger AND its guards (`PolicyConditions`). The trigger says the
asset should be built (it is stale, its cron tick passed, it expired); each guard may hold it back
(busy, a parent missing, quiet hours, failure backoff). Each is a named condition, labelled with a
name from `labels.py`, which the audit and the status read back.

The freshness, quiet-hours and backoff guardrails (`guardrails.py`), the upstream operand
(`upstream.py`), the code-change operand (`code_change.py`) and the run-in-progress operand
(`in_progress.py`) are custom conditions, so the sensors evaluate in the user-code server. Each
named piece carries a comment that says why it is shaped as it is.
"""

import functools
from dataclasses import dataclass

import dagster as dg

from dagster_autopilot.automation import labels
from dagster_autopilot.automation.code_change import CodeChangeUnbuilt
from dagster_autopilot.automation.guardrails import BackoffAllows, Expired, OutsideQuietHours
from dagster_autopilot.automation.in_progress import PlannedInActiveRun
from dagster_autopilot.automation.policy import AutomationPolicy
from dagster_autopilot.automation.upstream import UpstreamUpdated

AC = dg.AutomationCondition


# --- Guards -----------------------------------------------------------------------------------

# Dagster's `in_progress()`, its run half read with one query per tick rather than one per asset
# (see in_progress.py).
IN_PROGRESS = (PlannedInActiveRun() | AC.backfill_in_progress()).with_label("in_progress")

# Requests wait while this asset or a parent is being built (queued runs included): a second run
# would overlap the first, and a child built before its parent finishes would read stale data.
NOT_BUSY = (
    ~IN_PROGRESS & ~AC.any_deps_match(IN_PROGRESS).with_label("any_deps_in_progress")
).with_label(labels.NOT_BUSY)

# A missing parent would make the build fail; it is built first (or in the same run).
PARENTS_PRESENT = (~AC.any_deps_missing()).with_label(labels.PARENTS_PRESENT)


def quiet_hours_guard(policy: AutomationPolicy) -> dg.AutomationCondition | None:
    """Nothing is requested inside the policy's daily quiet window (none without `quiet_hours`)."""
    window = policy.quiet_window
    return None if window is None else OutsideQuietHours(*window)


def backoff_guard(policy: AutomationPolicy) -> dg.AutomationCondition:
    """After failed runs the asset waits out a growing backoff, and is paused after too many."""
    return BackoffAllows(policy.backoff)


def guards_for(policy: AutomationPolicy) -> tuple[dg.AutomationCondition, ...]:
    """The guards of `policy`, in the order of `labels.GUARDS`.

    Cheap built-ins first; the guardrails that query the instance last, so they only run for the
    assets that every earlier guard let through (an AND narrows each operand's candidates to the
    assets the previous one kept).
    """
    guards = (NOT_BUSY, PARENTS_PRESENT, quiet_hours_guard(policy), backoff_guard(policy))
    return tuple(guard for guard in guards if guard is not None)


# --- Triggers ---------------------------------------------------------------------------------

MISSING = AC.missing().with_label(labels.MISSING)

# Dagster's `code_version_changed()` is true for one tick only, and `.since(newly_updated())` would
# forget the change when a run that started under the old code finishes after the deploy
# (dagster#33708). One custom node remembers it until a run planned after the change builds the
# asset: a failed, cancelled or older run does not lose the change. See code_change.py.
CODE_CHANGED = CodeChangeUnbuilt()

# Resets when this asset's request was handled: it was requested, or it materialized anyway.
HANDLED = (AC.newly_requested() | AC.newly_updated()).with_label(labels.HANDLED)

# A request whose run failed is not done with: this sensor requested the asset since it last
# materialized, and the latest run that planned it failed without building it (a parent failing
# in the same run included). Under the backoff guard it is requested again until it succeeds or
# is paused, instead of waiting for the next cron tick (dagster#34067). Only failures: a cancel is
# someone's decision, and a run that succeeded without building the asset must not loop. Not the
# cron trigger `.since(newly_updated())`: that would evaluate the staleness subtree twice a tick,
# and `execution_failed()` (an instance query) only runs where the cheap `since` is true.
FAILED_REQUEST = (AC.newly_requested().since(AC.newly_updated()) & AC.execution_failed()).with_label(
    labels.FAILED_REQUEST
)

# A parent was updated since the previous tick (in a run that did not also build this asset) or
# is requested on this one; a view parent also counts the real assets behind its chain of views,
# since views store no data. One custom node rather than Dagster's dep operators: see upstream.py.
# Not `newly_updated()` on the asset itself: that would re-request the asset after every one of its
# own materializations.
UPSTREAM_UPDATED = UpstreamUpdated()

# Deterministic staleness: missing, its code changed, or upstream data changed since it last
# materialized; never time alone (a TTL is an explicit, separate `freshness` trigger).
STALE = (
    MISSING | CODE_CHANGED | UPSTREAM_UPDATED.since(AC.newly_updated()).with_label(labels.DEPS_UPDATED)
).with_label(labels.STALE)


def _with_expiry(
    trigger: dg.AutomationCondition, policy: AutomationPolicy, label: str
) -> dg.AutomationCondition:
    """`trigger`, or also the TTL expiry of a `freshness` policy (then labelled `label`)."""
    if policy.freshness is None:
        return trigger
    return (trigger | Expired(policy.freshness.ttl_seconds)).with_label(label)


def on_change_trigger(policy: AutomationPolicy) -> dg.AutomationCondition:
    """Stale (or expired): build as soon as the guards allow."""
    return _with_expiry(STALE, policy, labels.STALE_OR_EXPIRED)


def on_cron_trigger(policy: AutomationPolicy) -> dg.AutomationCondition:
    """At the first tick after each cron time, stale (or always); remembered until handled.

    Unlike Dagster's `on_cron()`, it does not wait for every parent to update after the cron tick:
    views only update when their code or parents change, so a table under `on_cron()` would wait
    forever. The decision taken at the cron tick is remembered until the request is handled, so a
    table that is busy at 06:00 is built once its run or its parents finish; a request whose run
    failed is made again after the backoff (`FAILED_REQUEST`).
    """
    assert policy.cron is not None
    tick = AC.cron_tick_passed(policy.cron, policy.timezone)
    due = tick if policy.rebuild == "always" else tick & STALE
    scheduled = (due.since(HANDLED) | FAILED_REQUEST).with_label(labels.CRON)
    return _with_expiry(scheduled, policy, labels.CRON_OR_EXPIRED)


# --- A policy as conditions -------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyConditions:
    """A policy as conditions: the trigger, and the guards that may hold it back, each named."""

    mode: str
    """`labels.ON_CHANGE` or `labels.ON_CRON`: the label of the whole condition."""
    trigger: dg.AutomationCondition
    guards: tuple[dg.AutomationCondition, ...]

    @property
    def condition(self) -> dg.AutomationCondition:
        """trigger AND each guard, in order: what the asset's `automation_condition` is."""
        condition = self.trigger
        for guard in self.guards:
            condition = condition & guard
        return condition.with_label(self.mode)


def policy_conditions(policy: AutomationPolicy) -> PolicyConditions | None:
    """The named trigger and guards that carry out `policy`; None when automation is off."""
    if not policy.enabled:
        return None
    if policy.is_cron:
        return PolicyConditions(labels.ON_CRON, on_cron_trigger(policy), guards_for(policy))
    return PolicyConditions(labels.ON_CHANGE, on_change_trigger(policy), guards_for(policy))


@functools.lru_cache(maxsize=4096)
def condition_for(policy: AutomationPolicy) -> dg.AutomationCondition | None:
    """The condition that carries out `policy`; None opts the asset out of automation.

    Memoized on the (frozen, hashable) policy: assets with the same policy share one condition
    object, which spares building a tree per asset at load time.
    """
    conditions = policy_conditions(policy)
    return None if conditions is None else conditions.condition
