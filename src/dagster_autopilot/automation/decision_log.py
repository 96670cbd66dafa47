"""The sensor tick's decision log in words: one sentence per decision, and the tables waiting for
their cron tick, in `autopilot explain`'s wording (its phrases are reused, not rewritten).

`autopilot explain` evaluates one asset on demand, with every piece of evidence; the tick log says
the same from what the tick already has (the decisions of `audit.decide`, the policies, the
clock), so it costs no query.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping

import dagster as dg
from dagster import AutomationResult

from dagster_autopilot.automation import labels
from dagster_autopilot.automation.apply import policy_of
from dagster_autopilot.automation.audit import Decision
from dagster_autopilot.automation.explain import (
    _join,
    _latest_cron_tick,
    _plural,
    _reason_phrases,
    quiet_hours_end,
)
from dagster_autopilot.automation.policy import AutomationPolicy
from dagster_autopilot.automation.status import next_refresh

# Names listed per waiting sentence in one tick's log line; the rest are counted.
_MAX_NAMES = 20


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def _hold(decision: Decision, policy: AutomationPolicy, now: datetime.datetime) -> str:
    """What holds a triggered asset back, as `autopilot explain` says it (without the evidence
    the tick does not have: run ids, which parents)."""
    outcome = decision.outcome
    if outcome == labels.HELD_BY[labels.NOT_BUSY]:
        return "a run building it or a parent is in progress"
    if outcome == labels.HELD_BY[labels.PARENTS_PRESENT]:
        return "a parent was never materialized"
    if outcome == labels.HELD_BY[labels.OUTSIDE_QUIET_HOURS] and policy.quiet_window is not None:
        _, end, timezone = policy.quiet_window
        return f"it is in its quiet hours until {quiet_hours_end(now, end, timezone).isoformat()}"
    failures = _plural(decision.failures or 0, "consecutive failure")
    if outcome == labels.PAUSED:
        return f"it is paused after {failures}; to resume, {decision.to_resume}"
    if outcome == labels.HELD_BY[labels.BACKOFF_ALLOWS]:
        return f"it is backing off until {_iso(decision.next_allowed)} after {failures}"
    return f"it is held back ({outcome})"


def decision_sentence(
    decision: Decision, policy: AutomationPolicy | None, now: datetime.datetime
) -> str:
    """The decision in one sentence: why the asset was requested, or what holds it back."""
    policy = policy or AutomationPolicy()
    name = decision.key.to_user_string()
    cron_tick = _latest_cron_tick(policy, now) if labels.CRON in decision.reasons else None
    phrases = _reason_phrases(
        list(decision.reasons),
        [],
        cron_tick,
        failed_request=False,
        expired_at=_iso(decision.expired_materialization),
        policy=policy,
    )
    because = _join(phrases) or "it is due"
    if decision.outcome == labels.REQUESTED:
        return f"{name} was requested because {because}."
    return f"{name} was not requested: {_hold(decision, policy, now)} (it is due because {because})."


def waiting_for_cron(
    results: Iterable[AutomationResult],
    decided: Iterable[dg.AssetKey],
    asset_graph,
    now: datetime.datetime,
) -> dict[str, str]:
    """For each cron policy's asset the tick did not trigger: `waits for its cron tick at T`,
    grouped as {sentence: names}, each naming at most a few assets and counting the rest."""
    decided = set(decided)
    waiting: dict[str, list[str]] = {}
    for result in results:
        key = result.key
        if not isinstance(key, dg.AssetKey) or key in decided:
            continue
        if result.condition.get_label() != labels.ON_CRON or not asset_graph.has(key):
            continue
        policy = policy_of(asset_graph.get(key).metadata)
        if policy is None or policy.cron is None:
            continue
        tick, kind = next_refresh(policy, None, now)
        if kind == "cron":
            waiting.setdefault(f"waiting for its cron tick at {tick}", []).append(key.to_user_string())
    return {sentence: _names(names) for sentence, names in sorted(waiting.items())}


def _names(names: list[str]) -> str:
    names = sorted(names)
    if len(names) <= _MAX_NAMES:
        return ", ".join(names)
    return ", ".join(names[:_MAX_NAMES]) + f" and {len(names) - _MAX_NAMES} more"


def policies_of(asset_graph, keys: Iterable[dg.AssetKey]) -> Mapping[dg.AssetKey, AutomationPolicy]:
    """The recorded policy of each key that has one."""
    policies = {}
    for key in keys:
        if asset_graph.has(key):
            policy = policy_of(asset_graph.get(key).metadata)
            if policy is not None:
                policies[key] = policy
    return policies
