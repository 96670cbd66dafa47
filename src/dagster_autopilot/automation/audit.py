"""The audit trail: why each asset was (or was not) requested, on the runs and in the tick log.

`AutomationConditionSensorDefinition.run_tags` are the same for every run. The library's sensors
evaluate in the user-code server, so their evaluation function can read each asset's evaluation
tree and tag every run with its own reasons, expiry timestamp and priority.
"""

import datetime
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dagster as dg
from dagster import AutomationResult

from dagster_autopilot.automation import labels
from dagster_autopilot.automation.apply import PRIORITY_METADATA, RUN_TAGS_METADATA
from dagster_autopilot.automation.guardrails import (
    EXPIRED_MATERIALIZATION,
    FAILURES,
    IS_PAUSED,
    NEXT_ALLOWED,
    TO_RESUME,
)

TRIGGER_TAG = "trigger"
TRIGGER_VALUE = "auto-materialize"
REASON_TAG = "autopilot/reason"
REASONS_BY_ASSET_TAG = "autopilot/reasons_by_asset"
EXPIRED_TAG = "autopilot/expired_materialization"
PRIORITY_TAG = "dagster/priority"
_MAX_TAG_VALUE = 4000

logger = logging.getLogger("dagster_autopilot.automation")


@dataclass(frozen=True)
class Decision:
    """What the automation decided for one asset on one tick."""

    key: dg.AssetKey
    outcome: str
    """`requested`, or what held a triggered asset back: `skipped_in_progress`, `backed_off`,
    `paused`, `quiet_hours`, `waiting_for_parents`."""
    reasons: tuple[str, ...] = ()
    """Why it was triggered: `missing`, `code_changed`, `deps_updated`, `cron`, `expired`."""
    expired_materialization: float | None = None
    """For an expiry, when the expired materialization happened (epoch seconds)."""
    failures: int | None = None
    """Consecutive failures, when the backoff guard evaluated."""
    next_allowed: float | None = None
    """When the backoff allows the next request (epoch seconds), if it holds the asset."""
    to_resume: str | None = None
    """For a pause, which has no end time: what lifts it."""

    def as_log_record(self) -> dict[str, object]:
        """The decision as a flat JSON-able mapping, for the structured log line."""
        record: dict[str, object] = {
            "asset": self.key.to_user_string(),
            "decision": self.outcome,
            "reasons": list(self.reasons),
        }
        if self.expired_materialization is not None:
            record["expired_materialization"] = _iso(self.expired_materialization)
        if self.failures is not None:
            record["failures"] = self.failures
        if self.next_allowed is not None:
            record["next_allowed"] = _iso(self.next_allowed)
        if self.to_resume is not None:
            record["to_resume"] = self.to_resume
        return record


@dataclass
class TickSummary:
    """The decisions of one tick and their counters."""

    decisions: list[Decision] = field(default_factory=list)

    @property
    def counters(self) -> dict[str, int]:
        """How many assets each outcome had on this tick (every counter present, zeros included)."""
        counts = Counter(decision.outcome for decision in self.decisions)
        extra = sorted(set(counts) - set(labels.COUNTERS))
        return {name: counts.get(name, 0) for name in (*labels.COUNTERS, *extra)}


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def _metadata_value(result: AutomationResult, key: str):
    value = (result.serializable_evaluation.metadata or {}).get(key)
    return getattr(value, "value", value)


def _true(result: AutomationResult) -> bool:
    return not result.true_subset.is_empty


def _walk(result: AutomationResult) -> Iterable[AutomationResult]:
    yield result
    for child in result.child_results:
        yield from _walk(child)


def _children_by_label(result: AutomationResult) -> dict[str, AutomationResult]:
    return {child.condition.get_label(): child for child in result.child_results}


def _reasons(trigger: AutomationResult) -> tuple[tuple[str, ...], float | None]:
    """The reasons a true trigger stands for, in `labels.REASONS` order, and the expired
    materialization's timestamp when one of them is `expired`."""
    reasons, expired_at = set(), None
    for node in _walk(trigger):
        reason = labels.REASON_OF.get(node.condition.get_label())
        if reason is not None and _true(node):
            reasons.add(reason)
            if reason == labels.EXPIRED:
                expired_at = _metadata_value(node, EXPIRED_MATERIALIZATION)
    return tuple(reason for reason in labels.REASONS if reason in reasons), expired_at


def decide(result: AutomationResult) -> Decision | None:
    """The decision for one asset's top-level result; None when nothing triggered it.

    The library's conditions (`conditions.PolicyConditions`) are an AND of one trigger and its
    guards, each found by its label; the first guard in `labels.GUARDS` order that is false is
    what held the asset back.
    """
    if not isinstance(result.key, dg.AssetKey):
        return None
    if result.condition.get_label() not in labels.POLICY_MODES:
        return Decision(result.key, labels.REQUESTED) if _true(result) else None
    children = _children_by_label(result)
    trigger = next(children[label] for label in labels.TRIGGERS if label in children)
    if not _true(trigger):
        return None
    reasons, expired_at = _reasons(trigger)
    outcome, failures, next_allowed = labels.REQUESTED, None, None
    for label in (label for label in labels.GUARDS if label in children):
        guard = children[label]
        if label == labels.BACKOFF_ALLOWS:
            failures = _metadata_value(guard, FAILURES)
            next_allowed = _metadata_value(guard, NEXT_ALLOWED)
        if not _true(guard):
            outcome = labels.HELD_BY[label]
            if label == labels.BACKOFF_ALLOWS and _metadata_value(guard, IS_PAUSED):
                outcome = labels.PAUSED
            break
    if outcome in (labels.REQUESTED, labels.PAUSED):
        next_allowed = None
    to_resume = TO_RESUME if outcome == labels.PAUSED else None
    return Decision(result.key, outcome, reasons, expired_at, failures, next_allowed, to_resume)


def tag_run_request(
    run_request: dg.RunRequest,
    decisions: Mapping[dg.AssetKey, Decision],
    priorities: Mapping[dg.AssetKey, int],
    asset_run_tags: Mapping[dg.AssetKey, Mapping[str, str]] | None = None,
) -> dg.RunRequest:
    """`run_request` with the audit tags of the assets it builds, and their declared run tags."""
    keys = list(run_request.asset_selection or [])
    reasons = {reason for key in keys if key in decisions for reason in decisions[key].reasons}
    tags = {name: value for key in keys for name, value in (asset_run_tags or {}).get(key, {}).items()}
    tags[TRIGGER_TAG] = TRIGGER_VALUE
    tags[REASON_TAG] = ",".join(r for r in labels.REASONS if r in reasons) or "unknown"
    by_asset = json.dumps(
        {k.to_user_string(): list(decisions[k].reasons) for k in keys if k in decisions},
        separators=(",", ":"),
        sort_keys=True,
    )
    if len(by_asset) <= _MAX_TAG_VALUE:
        tags[REASONS_BY_ASSET_TAG] = by_asset
    expired = [
        d.expired_materialization
        for k in keys
        if (d := decisions.get(k)) and d.expired_materialization is not None
    ]
    if expired:
        tags[EXPIRED_TAG] = _iso(min(expired))
    run_priorities = [priorities[key] for key in keys if key in priorities]
    if run_priorities:
        tags[PRIORITY_TAG] = str(max(run_priorities))
    return run_request.with_replaced_attrs(tags={**(run_request.tags or {}), **tags})


def run_tags_of(asset_graph, keys: Iterable[dg.AssetKey]) -> dict[dg.AssetKey, dict[str, str]]:
    """The `autopilot/run_tags` metadata of each key that has some."""
    run_tags = {}
    for key in keys:
        if asset_graph.has(key):
            value = asset_graph.get(key).metadata.get(RUN_TAGS_METADATA)
            value = getattr(value, "value", value)
            if value:
                run_tags[key] = json.loads(value)
    return run_tags


def priorities_of(asset_graph, keys: Iterable[dg.AssetKey]) -> dict[dg.AssetKey, int]:
    """The `autopilot/priority` metadata of each key that has one."""
    priorities = {}
    for key in keys:
        if not asset_graph.has(key):
            continue
        value = asset_graph.get(key).metadata.get(PRIORITY_METADATA)
        value = getattr(value, "value", value)
        if value is not None:
            priorities[key] = int(value)
    return priorities
