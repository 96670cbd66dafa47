"""Policy status: for each automated asset, its policy, last runs, next refresh and backoff state.

Read-only: it queries the instance (runs, asset records, the sensors' cursors) and the loaded
definitions, and never evaluates a condition. `explain.py` reports the backoff and the next refresh
through the same functions (`backoff_state`, `next_refresh`), so the two commands never disagree.
"""

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import dagster as dg

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation import labels
from dagster_autopilot.automation.apply import POLICY_METADATA, policy_of
from dagster_autopilot.automation.audit import REASON_TAG, TRIGGER_TAG, TRIGGER_VALUE
from dagster_autopilot.automation.guardrails import TO_RESUME, code_changed_after, failure_state
from dagster_autopilot.automation.policy import AutomationPolicy

# Automation runs read back to find each asset's latest one; older ones only matter for assets
# that have not been built by automation for a long time, which then show none.
_AUTO_RUNS_READ = 1000


@dataclass(frozen=True)
class AutoRun:
    """The latest run the automation launched for an asset."""

    run_id: str
    status: str
    reasons: str
    created: str


@dataclass(frozen=True)
class BackoffState:
    """Failures since the last success (or code change) and what they hold back."""

    failures: int
    next_allowed: str | None
    """None when nothing holds the asset back, and when it is paused (a pause has no end time)."""
    paused: bool
    to_resume: str | None = None
    """For a paused asset: what lifts the pause."""


@dataclass(frozen=True)
class AssetStatus:
    """The status of one automated asset."""

    asset: str
    policy: str
    last_materialization: str | None
    last_auto_run: AutoRun | None
    next_refresh: str | None
    """ISO time of the next cron tick or TTL expiry, whichever is first; None for on-change only."""
    next_refresh_kind: str | None
    """`cron`, `ttl`, or None."""
    backoff: BackoffState


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def _automated_specs(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    specs = {}
    for item in defs.assets or []:
        for spec in item.specs if isinstance(item, dg.AssetsDefinition) else [item]:
            if isinstance(spec, dg.AssetSpec) and spec.automation_condition is not None:
                specs[spec.key] = spec
    return specs


def _latest_auto_runs(instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]) -> dict:
    wanted, latest = set(keys), {}
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={TRIGGER_TAG: TRIGGER_VALUE}), limit=_AUTO_RUNS_READ
    )
    for record in records:  # newest first
        run = record.dagster_run
        for key in run.asset_selection or _planned_keys(instance, run.run_id):
            if key in wanted and key not in latest:
                latest[key] = AutoRun(
                    run_id=run.run_id,
                    status=run.status.value,
                    reasons=run.tags.get(REASON_TAG, ""),
                    created=record.create_timestamp.astimezone(datetime.UTC).isoformat(),
                )
    return latest


def _planned_keys(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    """The assets a run planned to build, for runs launched without an explicit asset selection."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    return {r.asset_key for r in records if r.asset_key is not None}


def _child_unique_id(condition: dg.AutomationCondition, label: str) -> str | None:
    """The unique id Dagster's evaluation gives the child of `condition` labelled `label`, which
    keys that node's cursor in the sensor's cursor."""
    root_id = condition.get_node_unique_id(parent_unique_id=None, index=None, target_key=None)
    for index, child in enumerate(condition.children):
        if child.get_label() == label:
            return child.get_node_unique_id(parent_unique_id=root_id, index=index, target_key=None)
    return None


@dataclass(frozen=True)
class StoredSensor:
    """An automation sensor's state as the instance stores it."""

    name: str
    cursor: str | None
    """The serialized cursor of its latest tick; None before its first tick."""
    running: bool
    """Whether the daemon ticks it: started in the UI, or left to a RUNNING default in code."""


def stored_sensors(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, StoredSensor]:
    """The stored state of each sensor of `defs`, by name; a sensor never ticked nor toggled has
    none, and then its default status decides whether it runs."""
    sensors = {sensor.name: sensor for sensor in defs.sensors or []}
    status = internals.InstigatorStatus
    found: dict[str, StoredSensor] = {}
    for state in instance.all_instigator_state(instigator_type=internals.InstigatorType.SENSOR):
        sensor = sensors.get(state.name)
        if sensor is None:
            continue
        declared_running = sensor.default_status == dg.DefaultSensorStatus.RUNNING
        running = state.status == status.RUNNING or (
            state.status == status.DECLARED_IN_CODE and declared_running
        )
        cursor = getattr(state.instigator_data, "cursor", None) or None
        found[state.name] = StoredSensor(state.name, cursor, running)
    for name, sensor in sensors.items():
        if name not in found:
            running = sensor.default_status == dg.DefaultSensorStatus.RUNNING
            found[name] = StoredSensor(name, None, running)
    return found


def read_sensor_cursor(cursor_text: str | None, asset_graph):
    """A stored automation sensor cursor, or None when there is none or it cannot be read (a
    cursor from another version: callers still report the rest)."""
    if not cursor_text:
        return None
    try:
        return internals.asset_daemon_cursor_from_instigator_serialized_cursor(cursor_text, asset_graph)
    except Exception:
        return None


def code_change_storage_id(
    cursor, key: dg.AssetKey, condition: dg.AutomationCondition | None
) -> int | None:
    """Where `key`'s code last changed, as its backoff guard recorded it in the sensor `cursor`."""
    backoff_id = _child_unique_id(condition, labels.BACKOFF_ALLOWS) if condition else None
    previous = cursor.get_previous_condition_cursor(key) if cursor and backoff_id else None
    node = previous.node_cursors_by_unique_id.get(backoff_id) if previous else None
    return code_changed_after(node.extra_state if node else None)


def _code_change_storage_ids(
    instance: dg.DagsterInstance, defs: dg.Definitions, specs: Mapping[dg.AssetKey, dg.AssetSpec]
) -> dict[dg.AssetKey, int]:
    """Where each asset's code last changed, as its backoff guard recorded it in its sensor's cursor."""
    graph = defs.resolve_asset_graph()
    found: dict[dg.AssetKey, int] = {}
    for stored in stored_sensors(instance, defs).values():
        cursor = read_sensor_cursor(stored.cursor, graph)
        if cursor is None:
            continue
        for key, spec in specs.items():
            changed = code_change_storage_id(cursor, key, spec.automation_condition)
            if changed is not None:
                found[key] = changed
    return found


def backoff_state(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    policy: AutomationPolicy,
    last_materialization_storage_id: int | None,
    code_changed_storage_id: int | None,
    now: datetime.datetime,
) -> BackoffState:
    """The failures that count against `key` and what its backoff makes of them at `now`: the
    same count its backoff guard makes (failed runs since its last materialization and since its
    code last changed)."""
    points = [p for p in (last_materialization_storage_id, code_changed_storage_id) if p]
    failures = failure_state(instance, key, policy.backoff, max(points) if points else None)
    allowed = failures.next_allowed
    return BackoffState(
        failures=failures.failures,
        next_allowed=_iso(allowed)
        if allowed and allowed > now.timestamp() and not failures.paused
        else None,
        paused=failures.paused,
        to_resume=TO_RESUME if failures.paused else None,
    )


def next_refresh(
    policy: AutomationPolicy, last_materialization: float | None, now: datetime.datetime
) -> tuple[str | None, str | None]:
    """The next cron tick or TTL expiry after `now`, whichever is first, and which (`cron`,
    `ttl`); (None, None) for a policy that only rebuilds on change."""
    candidates = []
    if policy.cron is not None:
        tick = next(internals.cron_string_iterator(now.timestamp(), policy.cron, policy.timezone))
        candidates.append((tick.timestamp(), "cron"))
    if policy.freshness is not None and last_materialization is not None:
        candidates.append((last_materialization + policy.freshness.ttl_seconds, "ttl"))
    if not candidates:
        return None, None
    at, kind = min(candidates)
    return _iso(at), kind


def automation_status(
    defs: dg.Definitions, instance: dg.DagsterInstance, now: datetime.datetime | None = None
) -> list[AssetStatus]:
    """The status of every asset of `defs` that has an automation condition, sorted by key."""
    now = now or datetime.datetime.now(datetime.UTC)
    specs = _automated_specs(defs)
    keys = sorted(specs, key=lambda key: key.to_user_string())
    records = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records(keys)}
    auto_runs = _latest_auto_runs(instance, keys)
    code_changes = _code_change_storage_ids(instance, defs, specs)
    statuses = []
    for key in keys:
        spec = specs[key]
        policy = policy_of(spec.metadata) or AutomationPolicy()
        entry = records.get(key)
        last = entry.last_materialization_record if entry else None
        backoff = backoff_state(
            instance, key, policy, last.storage_id if last else None, code_changes.get(key), now
        )
        next_at, next_kind = next_refresh(policy, last.timestamp if last else None, now)
        statuses.append(
            AssetStatus(
                asset=key.to_user_string(),
                policy=_text(spec.metadata.get(POLICY_METADATA)) or policy.describe(),
                last_materialization=_iso(last.timestamp) if last else None,
                last_auto_run=auto_runs.get(key),
                next_refresh=next_at,
                next_refresh_kind=next_kind,
                backoff=backoff,
            )
        )
    return statuses


def _text(value) -> str | None:
    return getattr(value, "value", value)


def as_json(statuses: Iterable[AssetStatus]) -> str:
    """The statuses as a JSON list, one object per asset."""
    return json.dumps([asdict(status) for status in statuses], indent=2)


def as_table(statuses: Iterable[AssetStatus]) -> str:
    """The statuses as plain text, one block per asset."""
    blocks = []
    for status in statuses:
        run = status.last_auto_run
        backoff = status.backoff
        if backoff.paused:
            held = (
                f"PAUSED after {backoff.failures} consecutive failures; to resume, {backoff.to_resume}"
            )
        elif backoff.next_allowed:
            held = f"{backoff.failures} failures, next try not before {backoff.next_allowed}"
        else:
            held = f"{backoff.failures} failures, not held back"
        lines: Mapping[str, str] = {
            "policy": status.policy,
            "last materialization": status.last_materialization or "never",
            "last auto run": f"{run.run_id} {run.status} ({run.reasons}) at {run.created}"
            if run
            else "none",
            "next refresh": f"{status.next_refresh} ({status.next_refresh_kind})"
            if status.next_refresh
            else "on change only",
            "backoff": held,
        }
        blocks.append(
            "\n".join([status.asset, *(f"  {name}: {value}" for name, value in lines.items())])
        )
    return "\n\n".join(blocks)
