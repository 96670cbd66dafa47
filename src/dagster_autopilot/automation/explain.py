"""Why an asset would (or would not) be requested on the automation's next tick, and until when.

`explain` evaluates the asset's automation condition as its sensor would on its next tick: with
the cursor the sensor stored in the instance, over the assets of that sensor the asset depends on
(a condition reads only its own asset's and its parents' results of the same tick). It runs
Dagster's evaluator as `evaluate_automation_conditions` does, without building a new cursor, so
nothing is launched and no cursor is written.

The answer reads the named trigger and guards of `conditions.PolicyConditions` by their labels
(`labels.py`), with the audit's `decide` (the sensor's decision log makes the same call). The
backoff and the next refresh come from the status's functions (`status.backoff_state`,
`status.next_refresh`), so `explain` and `status` never disagree.
"""

import base64
import binascii
import contextlib
import dataclasses
import datetime
import difflib
import gc
import json
import logging
import zlib
import zoneinfo
from dataclasses import asdict, dataclass, field

import dagster as dg
from dagster import AutomationResult

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation import labels
from dagster_autopilot.automation.apply import POLICY_METADATA, policy_of
from dagster_autopilot.automation.audit import decide
from dagster_autopilot.automation.guardrails import in_quiet_window
from dagster_autopilot.automation.policy import AutomationPolicy
from dagster_autopilot.automation.status import (
    BackoffState,
    StoredSensor,
    backoff_state,
    code_change_storage_id,
    next_refresh,
    read_sensor_cursor,
    stored_sensors,
)
from dagster_autopilot.automation.upstream import UPDATED_UPSTREAM, upstream_keys

# What a guard did on the evaluated tick.
ALLOWS = "allows"
HOLDS = "holds"
NOT_REACHED = "not_reached"
"""An earlier operand of the AND (the trigger, or a guard) was false, so this guard had nothing to
decide; Dagster evaluates an AND's operands in order, each on what the previous ones kept."""

# Decisions beyond the audit's (`labels.REQUESTED`, `labels.HELD_BY`, `labels.PAUSED`).
NOT_TRIGGERED = "not_triggered"
NOT_AUTOMATED = labels.OFF

ISO_FORMAT_HINT = "an ISO 8601 time such as 2026-01-05T06:00:00+00:00 (UTC when no offset is given)"


class UnknownAssetError(ValueError):
    """The asset key names no asset of the definitions."""


@dataclass(frozen=True)
class GuardCheck:
    """One guard of the asset's condition, as the evaluated tick saw it."""

    guard: str
    """Its label: `not_busy`, `parents_present`, `outside_quiet_hours`, `backoff_allows`."""
    state: str
    """`allows`, `holds`, or `not_reached`."""
    would_hold: bool | None = None
    """For a guard the tick did not reach: whether it holds the asset as well, checked directly
    on the facts it reads (runs in progress, the clock, the failures); None when not checked
    (`parents_present`, whose answer depends on what the tick requests)."""
    evidence: str | None = None
    """Why it holds, for a guard that holds or would hold."""


@dataclass(frozen=True)
class RunInProgress:
    """A run that is building the asset or one of its parents."""

    asset: str
    run_id: str
    status: str


@dataclass(frozen=True)
class Explanation:
    """Why `asset` would or would not be requested on the next tick: a sentence, then the facts."""

    asset: str
    evaluated_at: str
    sentence: str
    decision: str
    """`requested`; `skipped_in_progress`, `waiting_for_parents`, `quiet_hours`, `backed_off` or
    `paused` (a guard holds it); `not_triggered`; or `off` (no automation)."""
    policy: str | None
    mode: str
    """`on_change`, `on_cron`, or `off`."""
    sensor: str | None
    """The automation sensor that evaluates the asset; None when no sensor targets it."""
    sensor_running: bool
    trigger: str | None
    """The label of the asset's trigger (`stale`, `stale_or_expired`, `cron`, `cron_or_expired`)."""
    triggered: bool
    reasons: list[str]
    """What fired the trigger, in `labels.REASONS` order."""
    updated_parents: list[str]
    """For `deps_updated`: the upstream assets that updated."""
    cron_tick: str | None
    """For `cron`: the cron tick that passed (the latest one at or before the evaluation)."""
    expired_materialization: str | None
    """For `expired`: when the expired materialization happened."""
    guards: list[GuardCheck]
    held_by: str | None
    """The label of the guard that holds the asset back, if one does."""
    in_progress: list[RunInProgress]
    """Runs building the asset or a parent, when the `not_busy` guard holds it."""
    missing_parents: list[str]
    """Parents never materialized (and not requested on this tick), when `parents_present` holds."""
    quiet_until: str | None
    """When the quiet hours that hold the asset end."""
    backoff: BackoffState
    """Failures and what the backoff makes of them: the status's `backoff` for this asset."""
    last_materialization: str | None
    next_possible: str | None
    """The next time the asset could be requested; None when that waits on something with no
    known time (a run or a parent to finish, a pause to be lifted, a change upstream)."""
    next_possible_kind: str | None
    """`now`, `cron`, `ttl`, `quiet_hours_end`, `backoff_end`, or None."""
    details: list[str] = field(default_factory=list)
    """The facts as text, one line each, after the sentence."""

    def as_dict(self) -> dict:
        return asdict(self)

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def as_text(self) -> str:
        return "\n".join([self.sentence, *(f"  {line}" for line in self.details)])


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 time; UTC when it has no offset. A ValueError naming the format otherwise."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a time: expected {ISO_FORMAT_HINT}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def resolve_key(asset_graph, asset: str) -> dg.AssetKey:
    """The key of `asset` (`a/b` or `a.b` style user strings); an error naming close matches."""
    key = dg.AssetKey.from_user_string(asset)
    if asset_graph.has(key) and asset_graph.get(key).is_materializable:
        return key
    names = sorted(k.to_user_string() for k in asset_graph.materializable_asset_keys)
    close = difflib.get_close_matches(asset, names, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownAssetError(f"No asset '{asset}' in the project's definitions.{hint}")


# --- Reading the evaluation tree ----------------------------------------------------------------


def _true(result: AutomationResult) -> bool:
    return not result.true_subset.is_empty


def _evaluated(result: AutomationResult) -> bool:
    candidates = result.serializable_evaluation.candidate_subset
    return getattr(candidates, "is_empty", True) is False


def _walk(result: AutomationResult):
    yield result
    for child in result.child_results:
        yield from _walk(child)


def _metadata(result: AutomationResult, key: str):
    value = (result.serializable_evaluation.metadata or {}).get(key)
    return getattr(value, "value", value)


def _children_by_label(result: AutomationResult) -> dict[str, AutomationResult]:
    return {child.condition.get_label(): child for child in result.child_results}


def _guard_checks(children: dict[str, AutomationResult]) -> list[GuardCheck]:
    checks = []
    for label in labels.GUARDS:
        if label in children:
            guard = children[label]
            state = (ALLOWS if _true(guard) else HOLDS) if _evaluated(guard) else NOT_REACHED
            checks.append(GuardCheck(label, state))
    return checks


def _matching_dependencies(guard: AutomationResult) -> list[dg.AssetKey]:
    """The parents for which a dependency operand (`any_deps_missing()`...) under `guard` is true:
    Dagster evaluates such an operand once per parent, on a child node keyed by that parent."""
    found = set()
    for node in _walk(guard):
        for child in node.child_results:
            if child.key != node.key and isinstance(child.key, dg.AssetKey) and _true(child):
                found.add(child.key)
    return sorted(found)


# --- Evidence from the instance -----------------------------------------------------------------


def _runs_in_progress(instance: dg.DagsterInstance, keys: list[dg.AssetKey]) -> list[RunInProgress]:
    """The unfinished runs (queued ones included) that plan to build one of `keys`."""
    unfinished = set(internals.NOT_FINISHED_STATUSES)
    runs = []
    for key in keys:
        planned = instance.event_log_storage.get_latest_planned_materialization_info(key)
        run = instance.get_run_by_id(planned.run_id) if planned else None
        if run is not None and run.status in unfinished:
            runs.append(RunInProgress(key.to_user_string(), run.run_id, run.status.value))
    return runs


def quiet_hours_end(moment: datetime.datetime, end_minute: int, timezone: str) -> datetime.datetime:
    """The first end of the daily quiet window after `moment` (`end_minute` local time)."""
    local = moment.astimezone(zoneinfo.ZoneInfo(timezone))
    end = local.replace(hour=end_minute // 60, minute=end_minute % 60, second=0, microsecond=0)
    if end <= local:
        end += datetime.timedelta(days=1)
    return end.astimezone(datetime.UTC)


def _latest_cron_tick(policy: AutomationPolicy, moment: datetime.datetime) -> str | None:
    if policy.cron is None:
        return None
    tick = next(internals.reverse_cron_string_iterator(moment.timestamp(), policy.cron, policy.timezone))
    return tick.astimezone(datetime.UTC).isoformat()


def _updated_parents(
    instance: dg.DagsterInstance,
    asset_graph,
    key: dg.AssetKey,
    trigger: AutomationResult,
    requested: set[dg.AssetKey],
    last_storage_id: int | None,
) -> list[str]:
    """The upstream assets behind a `deps_updated` reason: as the upstream operand named them on
    this tick, or else those materialized after the asset (or requested on this tick)."""
    for node in _walk(trigger):
        if node.condition.get_label() == labels.UPSTREAM_UPDATED and _true(node):
            named = _metadata(node, UPDATED_UPSTREAM)
            # The operand names the first few only ("a, b and 3 more"); then all are looked up.
            if named and not str(named).endswith(" more"):
                return [name.strip() for name in str(named).split(",")]
    upstream = sorted(upstream_keys(asset_graph, key))
    records = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records(upstream)}
    updated = []
    for parent in upstream:
        entry = records.get(parent)
        last = entry.last_materialization_record if entry else None
        if parent in requested or (
            last is not None and (last_storage_id is None or last.storage_id > last_storage_id)
        ):
            updated.append(parent.to_user_string())
    return updated


# --- The sentence -------------------------------------------------------------------------------


def _join(parts: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`; with semicolons when a part holds a list of its own."""
    if len(parts) <= 1:
        return "".join(parts)
    if any("," in part for part in parts):
        return "; ".join(parts[:-1]) + "; and " + parts[-1]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _reason_phrases(
    reasons: list[str],
    updated_parents: list[str],
    cron_tick: str | None,
    failed_request: bool,
    expired_at: str | None,
    policy: AutomationPolicy,
) -> list[str]:
    phrases = []
    for reason in reasons:
        if reason == labels.MISSING:
            phrases.append("it was never materialized")
        elif reason == labels.CODE_CHANGED:
            phrases.append("its code changed")
        elif reason == labels.DEPS_UPDATED:
            if updated_parents:
                verb = "was" if len(updated_parents) == 1 else "were"
                phrases.append(f"{_join(updated_parents)} {verb} updated")
            else:
                phrases.append("a parent was updated")
        elif reason == labels.CRON:
            if failed_request:
                phrases.append("the run of its last cron request failed")
            else:
                phrases.append(f"its cron tick at {cron_tick} passed")
        elif reason == labels.EXPIRED:
            ttl = policy.freshness.ttl if policy.freshness else "?"
            phrases.append(f"its materialization of {expired_at} is older than its TTL of {ttl}")
    return phrases


def _hold_phrase(
    held_by: str,
    in_progress: list[RunInProgress],
    missing_parents: list[str],
    quiet_until: str | None,
    backoff: BackoffState,
) -> str:
    if held_by == labels.NOT_BUSY:
        if not in_progress:
            return "a run building it or a parent is in progress"
        runs = [f"run {run.run_id} ({run.status}) building {run.asset}" for run in in_progress]
        return f"{_join(runs)} {'is' if len(runs) == 1 else 'are'} in progress"
    if held_by == labels.PARENTS_PRESENT:
        noun = "parent" if len(missing_parents) == 1 else "parents"
        verb = "was" if len(missing_parents) == 1 else "were"
        return f"{noun} {_join(missing_parents)} {verb} never materialized"
    if held_by == labels.OUTSIDE_QUIET_HOURS:
        return f"it is in its quiet hours until {quiet_until}"
    if backoff.paused:
        failures = _plural(backoff.failures, "consecutive failure")
        return f"it is paused after {failures}; to resume, {backoff.to_resume}"
    failures = _plural(backoff.failures, "consecutive failure")
    return f"it is backing off until {backoff.next_allowed} after {failures}"


# --- explain ------------------------------------------------------------------------------------


def _covering_sensor(defs: dg.Definitions, asset_graph, key: dg.AssetKey):
    for sensor in defs.sensors or []:
        if isinstance(
            sensor, dg.AutomationConditionSensorDefinition
        ) and key in sensor.asset_selection.resolve(asset_graph, allow_missing=True):
            return sensor
    return None


# Dagster's plain format of a stored automation sensor cursor: "0" + base64(zlib(its JSON)).
_PLAIN_CURSOR_FORMAT = "0"


def _cursor_text_of(cursor_text: str | None, keys) -> str | None:
    """A stored sensor cursor with the condition cursors of `keys` only, in the same format; the
    text as given when it is in another format or is not readable (`read_sensor_cursor` decides).

    Reading a whole cursor builds every node cursor of every asset of the sensor: most of an
    answer's time at 500 assets. Parsing its JSON and keeping the evaluated assets' part first
    costs a fraction of that.
    """
    if not cursor_text or cursor_text[0] != _PLAIN_CURSOR_FORMAT:
        return cursor_text
    try:
        data = json.loads(zlib.decompress(base64.b64decode(cursor_text[1:])))
        condition_cursors = data.get("previous_condition_cursors")
        if not isinstance(condition_cursors, list):  # an older cursor, in Dagster's legacy shape
            return cursor_text
        data["previous_condition_cursors"] = [
            c for c in condition_cursors if _condition_cursor_key(c) in keys
        ]
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, zlib.error):
        return cursor_text
    return _PLAIN_CURSOR_FORMAT + base64.b64encode(zlib.compress(json.dumps(data).encode())).decode()


def _condition_cursor_key(condition_cursor: dict):
    """The key of one asset's condition cursor, in a cursor's JSON: the key of the subset it
    requested on that tick (`AutomationConditionCursor.key`)."""
    return dg.deserialize_value(json.dumps(condition_cursor["previous_requested_subset"])).key


@contextlib.contextmanager
def _no_garbage_collection():
    """Python's cyclic garbage collector paused while an answer is computed.

    An answer allocates a few hundred thousand objects, the cursor's JSON above all, which starts
    full collections: each walks every object of the loaded definitions (most of a second at 1,000
    dbt models) and frees next to nothing. The answer's own garbage is collected once it resumes.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def explain(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    asset: str | dg.AssetKey,
    evaluation_time: datetime.datetime | None = None,
) -> Explanation:
    """Why `asset` would or would not be requested if its automation sensor ticked at
    `evaluation_time` (default: now), read from the instance without changing it."""
    with _no_garbage_collection():
        return _explain(defs, instance, asset, evaluation_time)


def _explain(defs, instance, asset, evaluation_time) -> Explanation:
    now = evaluation_time or datetime.datetime.now(datetime.UTC)
    asset_graph = defs.resolve_asset_graph()
    key = asset if isinstance(asset, dg.AssetKey) else resolve_key(asset_graph, asset)
    node = asset_graph.get(key)
    name = key.to_user_string()
    condition = node.automation_condition
    policy = policy_of(node.metadata) or AutomationPolicy()
    policy_text = getattr(node.metadata.get(POLICY_METADATA), "value", None) or (
        policy.describe() if condition is not None else None
    )
    records = instance.get_asset_records([key])
    entry = records[0].asset_entry if records else None
    last = entry.last_materialization_record if entry else None
    last_at = _iso(last.timestamp) if last else None

    sensor = _covering_sensor(defs, asset_graph, key) if condition is not None else None
    stored: StoredSensor | None = stored_sensors(instance, defs).get(sensor.name) if sensor else None
    cursor, evaluated = None, None
    if condition is not None:
        # The sensor's assets this one depends on, itself included: what its result depends on.
        selection = dg.AssetSelection.assets(key).upstream()
        if sensor is not None:
            selection = selection & sensor.asset_selection
        keys = selection.resolve(asset_graph)
        # Only the evaluated assets' part of the cursor: reading it costs in proportion to its size.
        if stored is not None:
            cursor = read_sensor_cursor(_cursor_text_of(stored.cursor, keys), asset_graph)
        evaluated = _evaluate(instance, asset_graph, keys, now, cursor)
    backoff = backoff_state(
        instance,
        key,
        policy,
        last.storage_id if last else None,
        code_change_storage_id(cursor, key, condition),
        now,
    )
    base = {
        "asset": name,
        "evaluated_at": now.astimezone(datetime.UTC).isoformat(),
        "policy": policy_text,
        "sensor": sensor.name if sensor else None,
        "sensor_running": bool(stored and stored.running),
        "backoff": backoff,
        "last_materialization": last_at,
    }
    if evaluated is None:
        return _finish(
            Explanation(
                **base,
                sentence=f"{name} is not automated: its policy is off, so it runs only when "
                "someone materializes it.",
                decision=NOT_AUTOMATED,
                mode=labels.OFF,
                trigger=None,
                triggered=False,
                reasons=[],
                updated_parents=[],
                cron_tick=None,
                expired_materialization=None,
                guards=[],
                held_by=None,
                in_progress=[],
                missing_parents=[],
                quiet_until=None,
                next_possible=None,
                next_possible_kind=None,
            )
        )

    result = next(r for r in evaluated if r.key == key)
    requested = {r.key for r in evaluated if _true(r) and isinstance(r.key, dg.AssetKey)}
    explanation = _from_result(instance, asset_graph, key, result, requested, policy, base, last, now)
    if not explanation.sensor_running:
        # The evaluation says what a tick would decide; a stopped sensor makes no tick at all.
        if sensor is None:
            but = "no automation sensor targets it, so nothing requests it"
        else:
            but = f"its sensor {sensor.name} is stopped, so nothing is requested until it starts"
        sentence = f"{explanation.sentence[:-1]}; but {but}."
        explanation = dataclasses.replace(explanation, sentence=sentence)
    return _finish(explanation)


def _evaluate(instance, asset_graph, keys, now, cursor) -> list[AutomationResult]:
    """The results of a tick at `now` over the automated assets among `keys`, from `cursor` (the
    first tick's when None), as `dg.evaluate_automation_conditions` computes them."""
    cursor = cursor or internals.asset_daemon_cursor_from_instigator_serialized_cursor(None, asset_graph)
    evaluator = internals.AutomationConditionEvaluator(
        entity_keys={k for k in keys if asset_graph.get(k).automation_condition is not None},
        instance=instance,
        asset_graph=asset_graph,
        cursor=cursor,
        emit_backfills=False,
        evaluation_id=cursor.evaluation_id,
        evaluation_time=now,
        logger=logging.getLogger("dagster.automation_condition_tester"),
    )
    results, _ = evaluator.evaluate()
    return list(results)


def _from_result(instance, asset_graph, key, result, requested, policy, base, last, now):
    name = key.to_user_string()
    mode = result.condition.get_label()
    children = _children_by_label(result)
    trigger_label = next((label for label in labels.TRIGGERS if label in children), None)
    trigger = children.get(trigger_label) if trigger_label else None
    decision = decide(result)
    triggered = decision is not None
    reasons = list(decision.reasons) if decision else []
    guards = _guard_checks(children)
    held_by = next((check.guard for check in guards if check.state == HOLDS), None)
    backoff: BackoffState = base["backoff"]

    updated_parents = []
    if labels.DEPS_UPDATED in reasons and trigger is not None:
        updated_parents = _updated_parents(
            instance, asset_graph, key, trigger, requested, last.storage_id if last else None
        )
    failed_request = trigger is not None and any(
        node.condition.get_label() == labels.FAILED_REQUEST and _true(node) for node in _walk(trigger)
    )
    cron_tick = _latest_cron_tick(policy, now) if labels.CRON in reasons else None
    expired_at = _iso(decision.expired_materialization) if decision else None

    # The evidence of the guard that holds the asset on this tick, and of each guard the tick did
    # not reach (an earlier operand of the AND was false) that holds it as well.
    in_progress, missing_parents, quiet_until = [], [], None
    holding: list[str] = []
    checked: list[GuardCheck] = []
    for check in guards:
        label, holds = check.guard, check.state == HOLDS
        if check.state == ALLOWS:
            checked.append(check)
            continue
        if label == labels.NOT_BUSY:
            parents = sorted(asset_graph.get(key).parent_keys)
            runs = _runs_in_progress(instance, [key, *parents])
            holds = holds or bool(runs)
            in_progress = runs if holds else []
        elif label == labels.PARENTS_PRESENT and holds:
            missing = _matching_dependencies(children[labels.PARENTS_PRESENT])
            missing_parents = [parent.to_user_string() for parent in missing]
        elif label == labels.OUTSIDE_QUIET_HOURS and policy.quiet_window is not None:
            start, end, timezone = policy.quiet_window
            holds = holds or in_quiet_window(now, start, end, timezone)
            quiet_until = quiet_hours_end(now, end, timezone).isoformat() if holds else None
        elif label == labels.BACKOFF_ALLOWS:
            holds = holds or backoff.paused or backoff.next_allowed is not None
        evidence = None
        if holds:
            holding.append(label)
            evidence = _hold_phrase(label, in_progress, missing_parents, quiet_until, backoff)
        unchecked = check.state == NOT_REACHED and label == labels.PARENTS_PRESENT
        would_hold = None if check.state != NOT_REACHED or unchecked else holds
        checked.append(dataclasses.replace(check, would_hold=would_hold, evidence=evidence))
    guards = checked
    holds_text = _join([check.evidence for check in guards if check.evidence])

    next_possible, next_kind = None, None
    phrases = _reason_phrases(reasons, updated_parents, cron_tick, failed_request, expired_at, policy)
    if triggered and held_by is None:
        sentence = f"{name} would be requested on the next tick because {_join(phrases)}."
        next_possible, next_kind = base["evaluated_at"], "now"
    elif triggered:
        sentence = (
            f"{name} would not be requested on the next tick: {holds_text} "
            f"(it is due because {_join(phrases)})."
        )
        next_possible, next_kind = _end_of_holds(holding, quiet_until, backoff)
    else:
        next_possible, next_kind = next_refresh(policy, last.timestamp if last else None, now)
        if next_kind == "cron":
            why = f"it waits for its cron tick at {next_possible}"
        elif last is None:
            why = "nothing triggers it"
        else:
            why = f"it is not stale since its last materialization at {base['last_materialization']}"
            if next_kind == "ttl":
                why += f", which expires at {next_possible}"
        if holds_text:
            why += f", and {holds_text}"
        sentence = f"{name} would not be requested on the next tick: {why}."

    outcome = decision.outcome if decision else NOT_TRIGGERED
    return Explanation(
        **base,
        sentence=sentence,
        decision=outcome,
        mode=mode if mode in labels.POLICY_MODES else labels.ON_CHANGE,
        trigger=trigger_label,
        triggered=triggered,
        reasons=reasons,
        updated_parents=updated_parents,
        cron_tick=cron_tick,
        expired_materialization=expired_at,
        guards=guards,
        held_by=held_by,
        in_progress=in_progress,
        missing_parents=missing_parents,
        quiet_until=quiet_until,
        next_possible=next_possible,
        next_possible_kind=next_kind,
    )


def _end_of_holds(
    holding: list[str], quiet_until: str | None, backoff: BackoffState
) -> tuple[str | None, str | None]:
    """When every guard in `holding` lets the asset through, and which ends last; (None, None)
    when one waits on something with no known time (a run, a parent, a pause)."""
    ends = []
    for label in holding:
        if label == labels.OUTSIDE_QUIET_HOURS and quiet_until:
            ends.append((quiet_until, "quiet_hours_end"))
        elif label == labels.BACKOFF_ALLOWS and backoff.next_allowed and not backoff.paused:
            ends.append((backoff.next_allowed, "backoff_end"))
        else:
            return None, None
    return max(ends, key=lambda end: datetime.datetime.fromisoformat(end[0])) if ends else (None, None)


def _finish(explanation: Explanation) -> Explanation:
    """`explanation` with its detail lines."""
    e = explanation
    lines = [f"policy: {e.policy or 'off'}"]
    if e.sensor is None:
        lines.append("sensor: none targets this asset")
    else:
        state = "running" if e.sensor_running else "STOPPED: nothing is requested until it starts"
        lines.append(f"sensor: {e.sensor} ({state})")
    lines.append(f"evaluated at: {e.evaluated_at}")
    lines.append(f"last materialization: {e.last_materialization or 'never'}")
    if e.trigger is not None:
        fired = f"fired ({', '.join(e.reasons)})" if e.triggered else "not fired"
        lines.append(f"trigger {e.trigger}: {fired}")
    if e.updated_parents:
        lines.append(f"updated parents: {', '.join(e.updated_parents)}")
    if e.cron_tick:
        lines.append(f"cron tick: {e.cron_tick}")
    if e.expired_materialization:
        lines.append(f"expired materialization: {e.expired_materialization}")
    for check in e.guards:
        line = f"guard {check.guard}: {check.state.replace('_', ' ')}"
        if check.evidence and check.state == HOLDS:
            line += f" ({check.evidence})"
        elif check.evidence:
            line += f" (holds as well: {check.evidence})"
        lines.append(line)
    for run in e.in_progress:
        lines.append(f"in progress: run {run.run_id} ({run.status}) building {run.asset}")
    if e.missing_parents:
        lines.append(f"missing parents: {', '.join(e.missing_parents)}")
    if e.quiet_until:
        lines.append(f"quiet hours until: {e.quiet_until}")
    b = e.backoff
    if b.paused:
        lines.append(
            f"backoff: PAUSED after {b.failures} consecutive failures; to resume, {b.to_resume}"
        )
    elif b.next_allowed:
        lines.append(f"backoff: {b.failures} failures, next try not before {b.next_allowed}")
    else:
        lines.append(f"backoff: {b.failures} failures, not held back")
    if e.next_possible:
        lines.append(f"next possible request: {e.next_possible} ({e.next_possible_kind})")
    elif e.decision == labels.PAUSED:
        lines.append("next possible request: once the pause is lifted")
    elif e.decision == labels.HELD_BY[labels.NOT_BUSY]:
        lines.append("next possible request: the first tick after those runs end")
    elif e.decision == labels.HELD_BY[labels.PARENTS_PRESENT]:
        lines.append("next possible request: the first tick after its parents are built")
    elif e.decision == NOT_TRIGGERED:
        lines.append("next possible request: when a parent updates or its code changes")
    return dataclasses.replace(e, details=lines)
