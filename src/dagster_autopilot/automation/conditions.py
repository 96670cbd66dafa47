"""The automation conditions the library assigns: Dagster's built-in operands plus five of our own.

The freshness, quiet-hours and backoff guardrails (`guardrails.py`), the upstream operand
(`upstream.py`) and the code-change operand (`code_change.py`) are custom conditions, so the
sensors evaluate in the user-code server. Each named piece carries a comment that says why it is
shaped as it is. The labels `missing`, `code_changed`,
`deps_updated`, `cron` and `expired` are the reasons the audit trail reads back from each
evaluation.
"""

import functools

import dagster as dg

from dagster_autopilot.automation.code_change import CodeChangeUnbuilt
from dagster_autopilot.automation.guardrails import BackoffAllows, Expired, OutsideQuietHours
from dagster_autopilot.automation.policy import AutomationPolicy
from dagster_autopilot.automation.upstream import UpstreamUpdated

AC = dg.AutomationCondition

# The reasons an automation run can carry, in the order they are reported.
REASONS = ("missing", "code_changed", "deps_updated", "cron", "expired")


# Requests wait while this asset or a parent is being built (queued runs included): a second run
# would overlap the first, and a child built before its parent finishes would read stale data.
NOT_BUSY = (~AC.in_progress() & ~AC.any_deps_in_progress()).with_label("not_busy")

# A missing parent would make the build fail; it is built first (or in the same run).
PARENTS_PRESENT = (~AC.any_deps_missing()).with_label("parents_present")

MISSING = AC.missing().with_label("missing")

# Dagster's `code_version_changed()` is true for one tick only, and `.since(newly_updated())` would
# forget the change when a run that started under the old code finishes after the deploy
# (dagster#33708). One custom node remembers it until a run planned after the change builds the
# asset: a failed, cancelled or older run does not lose the change. See code_change.py.
CODE_CHANGED = CodeChangeUnbuilt()

# Resets when this asset's request was handled: it was requested, or it materialized anyway.
HANDLED = (AC.newly_requested() | AC.newly_updated()).with_label("handled")

# A request whose run failed is not done with: this sensor requested the asset since it last
# materialized, and the latest run that planned it failed without building it (a parent failing
# in the same run included). Under the backoff guard it is requested again until it succeeds or
# is paused, instead of waiting for the next cron tick (dagster#34067). Only failures: a cancel is
# someone's decision, and a run that succeeded without building the asset must not loop. Not the
# cron trigger `.since(newly_updated())`: that would evaluate the staleness subtree twice a tick,
# and `execution_failed()` (an instance query) only runs where the cheap `since` is true.
FAILED_REQUEST = (AC.newly_requested().since(AC.newly_updated()) & AC.execution_failed()).with_label(
    "failed_request"
)


# A parent was updated since the previous tick (in a run that did not also build this asset) or
# is requested on this one; a view parent also counts the real assets behind its chain of views,
# since views store no data. One custom node rather than Dagster's dep operators: see upstream.py.
# Not `newly_updated()` on the asset itself: that would re-request the asset after every one of its
# own materializations.
UPSTREAM_UPDATED = UpstreamUpdated()

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
    table that is busy at 06:00 is built once its run or its parents finish; a request whose run
    failed is made again after the backoff (`FAILED_REQUEST`).
    """
    assert policy.cron is not None
    tick = AC.cron_tick_passed(policy.cron, policy.timezone)
    trigger = tick if policy.rebuild == "always" else tick & STALE
    due = (trigger.since(HANDLED) | FAILED_REQUEST).with_label("cron")
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
