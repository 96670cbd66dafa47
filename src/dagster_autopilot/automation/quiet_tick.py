"""Quiet ticks: a tick that nothing can have changed returns the previous cursor, unevaluated.

An automation tick evaluates every asset of its sensor, seconds of CPU at 1,000 assets, while most
ticks see nothing new. Whether a tick could request anything depends only on the event log, the
definitions, the clock and the previous tick's own requests. So a tick is skipped only when, since
the previous evaluated tick:

- that tick requested nothing (requests feed back into the next evaluation: `newly_requested()`);
- no event was stored: one query for the event log's greatest storage id. It counts every
  materialization, observation, planned materialization, asset check and run status change (in a
  sharded SQLite instance, the index shard holds exactly those; elsewhere every event, which only
  makes skips rarer);
- the definitions are the same: every targeted asset's key, code version, parents and condition;
- no time boundary has passed: a cron tick of any `cron_tick_passed()`, a TTL expiry, the end of a
  backoff wait, the start or end of quiet hours. The evaluated tick computes the earliest one.

Anything that cannot be bounded (a condition this module does not know, a partitioned asset) makes
every tick evaluate: a wrong skip is a lost update, an extra evaluation only costs time.

A tick that cannot be skipped may still evaluate only some assets (`partial_tick.py`), from the
same state. The sensor also makes its full evaluations a time boundary: every asset is evaluated
at least every `FULL_EVALUATION_EVERY`, which bounds how long a change that stores no event (an
asset wiped in SQLite storage, a deleted run, a backfill cancelled before it launched a run) can
go unseen.

What the evaluated tick saw is kept in the sensor's cursor, as an extra field of the JSON inside
Dagster's own cursor format: Dagster's readers (the daemon, the UI's evaluation id, `status.py`)
ignore fields a class does not declare, so they read the cursor as before. `serialize_cursor` writes
it and `read_state` reads it; a cursor without it (an older one, or a reset) evaluates.
"""

import base64
import binascii
import dataclasses
import datetime
import hashlib
import json
import weakref
import zlib
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import dagster as dg

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation.guardrails import (
    NEXT_ALLOWED,
    BackoffAllows,
    Expired,
    OutsideQuietHours,
)

# The cursor field that holds the quiet state; written first in the cursor's JSON, so that a tick
# decompresses only the cursor's first bytes to read it.
FIELD = "autopilot_quiet_tick"
_ENVELOPE_VERSION = "0"  # Dagster's uncompacted cursor format: "0" + base64(zlib(json))
_HEAD_CHARACTERS = 8192  # base64 characters decoded to read the field (a multiple of 4)
_HEAD_BYTES = 4096

# Conditions whose truth changes only with stored events, the definitions, or the previous tick's
# requests and results: never with the clock alone (for an unpartitioned asset). Matched by class
# name, so a Dagster release that renames one makes ticks evaluate rather than skip wrongly.
TIMELESS = frozenset(
    {
        # Dagster's operators and event-driven operands
        "AndAutomationCondition",
        "OrAutomationCondition",
        "NotAutomationCondition",
        "SinceCondition",
        "NewlyTrueCondition",
        "AnyDepsCondition",
        "AllDepsCondition",
        "AnyChecksCondition",
        "AllChecksCondition",
        "MissingAutomationCondition",
        "NewlyRequestedCondition",
        "NewlyUpdatedCondition",
        "RunInProgressAutomationCondition",
        "BackfillInProgressAutomationCondition",
        "ExecutionFailedAutomationCondition",
        "InitialEvaluationCondition",
        "WillBeRequestedCondition",
        "LatestRunExecutedWithRootTargetCondition",
        "LatestRunExecutedWithTagsCondition",
        "CodeVersionChangedCondition",
        "DataVersionChangedCondition",
        "CheckResultCondition",
        # Only for time-partitioned assets does the latest window move; partitioned assets are
        # refused as a whole (`_Unbounded`).
        "InLatestTimeWindowCondition",
        # The library's own (automation/code_change.py, upstream.py); `BackoffAllows` holds an
        # asset until a time its evaluation reports (`_backoff_ends`).
        "CodeChangeUnbuilt",
        "UpstreamUpdated",
        "PlannedInActiveRun",
        BackoffAllows.__name__,
    }
)
CRON = "CronTickPassedCondition"

# The default time between two full evaluations, whatever the events say.
FULL_EVALUATION_EVERY = datetime.timedelta(minutes=10)


class _Unbounded(Exception):
    """Something a tick depends on has no known next change: every tick must evaluate."""


@dataclass(frozen=True)
class QuietState:
    """What the previous evaluated tick saw; until one of these changes, a tick that requested
    nothing would request nothing again, and an asset that nothing touched keeps its result."""

    max_storage_id: int | None
    """The event log's greatest storage id when the tick began."""
    definitions: str
    """The fingerprint of the definitions the tick evaluated (`Watch.definitions`)."""
    evaluated_at: float
    """When the tick evaluated (epoch seconds)."""
    next_boundary: float | None
    """The earliest time boundary at or after `evaluated_at`; None when no condition has one."""
    requested: bool = True
    """Whether the tick requested anything (then the next one evaluates). A state written before
    this field existed reads as True."""

    def allows_skip(self, now: datetime.datetime, watch: "Watch") -> bool:
        """Whether a tick at `now` that sees `watch` may return the evaluated tick's cursor."""
        return (
            not self.requested
            and watch.max_storage_id == self.max_storage_id
            and self.allows_partial(now, watch)
        )

    def allows_partial(self, now: datetime.datetime, watch: "Watch") -> bool:
        """Whether a tick at `now` that sees `watch` may keep the previous results of the assets
        that nothing touched: the same definitions, and no time boundary passed."""
        return (
            watch.definitions is not None
            and watch.definitions == self.definitions
            and self.max_storage_id is not None
            and self.evaluated_at <= now.timestamp()
            and (self.next_boundary is None or now.timestamp() < self.next_boundary)
        )


@dataclass(frozen=True)
class Watch:
    """What a tick compares with the previous evaluated tick: cheap enough to read every tick."""

    max_storage_id: int | None
    definitions: str | None
    """None when the sensor's assets cannot be skipped (`_Unbounded`)."""

    @classmethod
    def of(cls, sensor, asset_graph, instance: dg.DagsterInstance) -> "Watch":
        # The storage id first: an event stored while the tick evaluates makes the next tick
        # evaluate too.
        try:
            max_storage_id = instance.event_log_storage.get_maximum_record_id()
        except NotImplementedError:  # an event log that cannot say: every tick evaluates
            return cls(None, None)
        return cls(max_storage_id, _definitions_fingerprint(sensor, asset_graph))


# --- The cursor --------------------------------------------------------------------------------


def serialize_cursor(cursor, state: QuietState | None, sensor_name: str | None = None) -> str:
    """Dagster's cursor as the sensor stores it, with `state` as an extra field when given.

    With `sensor_name`, each asset's state is serialized once for as long as it is unchanged, and
    `read_cursor` returns this very object when the sensor's next tick is handed the result.
    """
    if state is None:
        return internals.asset_daemon_cursor_to_instigator_serialized_cursor(cursor)
    text = _cursor_json(cursor, sensor_name)
    if not text.startswith("{"):
        return internals.asset_daemon_cursor_to_instigator_serialized_cursor(cursor)
    text = f'{{"{FIELD}": {json.dumps(asdict(state))}, {text[1:]}'
    serialized = _ENVELOPE_VERSION + base64.b64encode(zlib.compress(text.encode())).decode()
    if sensor_name is not None:
        _last_written[sensor_name] = (serialized, cursor)
    return serialized


def read_cursor(serialized_cursor: str | None, asset_graph, sensor_name: str):
    """The cursor a tick of `sensor_name` is handed, read as Dagster reads it; the object itself
    when it is the cursor this process last wrote for the sensor (a partial tick keeps most of it)."""
    last = _last_written.get(sensor_name)
    if last is not None and serialized_cursor == last[0]:
        return last[1]
    read = internals.asset_daemon_cursor_from_instigator_serialized_cursor
    return read(serialized_cursor, asset_graph)


# Reading and writing the whole cursor is most of a partial tick: every asset's state, a few
# hundred of them per sensor, although the tick changed few of them. A code server ticks each
# sensor from the cursor it wrote on the previous tick, so it keeps, per sensor, the last cursor
# it wrote with its object, and the JSON of each asset's state (by object: the state of an asset
# the tick did not evaluate is the same object as before).
_last_written: dict[str, tuple[str, object]] = {}
_state_json: dict[str, dict[int, tuple[object, str]]] = {}
_CONDITION_CURSORS = '"previous_condition_cursors": []'


def _cursor_json(cursor, sensor_name: str | None) -> str:
    """`internals.serialize_asset_daemon_cursor(cursor)`, from the JSON of each asset's state kept
    since the previous tick where the state is the same object."""
    states = cursor.previous_condition_cursors
    if sensor_name is None or not states:
        return internals.serialize_asset_daemon_cursor(cursor)
    shell = internals.serialize_asset_daemon_cursor(
        dataclasses.replace(cursor, previous_condition_cursors=[])
    )
    if shell.count(_CONDITION_CURSORS) != 1:  # a format this module does not know: no shortcut
        return internals.serialize_asset_daemon_cursor(cursor)
    known = _state_json.get(sensor_name, {})
    kept: dict[int, tuple[object, str]] = {}
    for state in states:
        entry = known.get(id(state))
        if entry is None or entry[0] is not state:
            entry = (state, internals.serialize_asset_daemon_cursor(state))
        kept[id(state)] = entry
    _state_json[sensor_name] = kept
    listed = ", ".join(kept[id(state)][1] for state in states)
    return shell.replace(_CONDITION_CURSORS, f'"previous_condition_cursors": [{listed}]')


def read_state(serialized_cursor: str | None) -> QuietState | None:
    """The quiet state kept in a sensor cursor; None when it has none (or is not readable)."""
    if not serialized_cursor or serialized_cursor[0] != _ENVELOPE_VERSION:
        return None
    prefix = f'{{"{FIELD}": '
    try:
        compressed = base64.b64decode(serialized_cursor[1 : 1 + _HEAD_CHARACTERS])
        head = zlib.decompressobj().decompress(compressed, _HEAD_BYTES).decode(errors="replace")
        if not head.startswith(prefix):
            return None
        fields, _ = json.JSONDecoder().raw_decode(head, len(prefix))
        return QuietState(**fields)
    except (ValueError, TypeError, binascii.Error, zlib.error):
        return None


# --- What a quiet tick compares ------------------------------------------------------------------

# Per asset graph (one per load of the definitions): the fingerprint of each sensor's assets, by
# sensor name (unique in the repository that owns the graph).
_fingerprints: "weakref.WeakKeyDictionary[object, dict[str, str | None]]" = weakref.WeakKeyDictionary()


def _definitions_fingerprint(sensor, asset_graph) -> str | None:
    """A hash of everything in the definitions a tick of `sensor` reads; None when unbounded."""
    try:
        cached = _fingerprints.setdefault(asset_graph, {})
    except TypeError:  # an asset graph that takes no weak reference: computed every tick
        cached = {}
    if sensor.name not in cached:
        try:
            cached[sensor.name] = _fingerprint(sensor, asset_graph)
        except _Unbounded:
            cached[sensor.name] = None
    return cached[sensor.name]


def _fingerprint(sensor, asset_graph) -> str:
    digest = hashlib.sha256()
    describe_condition = _memoized(repr)
    default = sensor.default_condition
    digest.update(f"{sensor.name}\n{describe_condition(default) if default else ''}\n".encode())
    for key, node, condition in sorted(_targets(sensor, asset_graph), key=lambda t: str(t[0])):
        if getattr(node, "partitions_def", None) is not None:
            raise _Unbounded(f"{key} is partitioned")
        _time_kinds(condition)  # raises for a condition that cannot be bounded
        parents = sorted(str(parent) for parent in getattr(node, "parent_entity_keys", ()))
        code_version = getattr(node, "code_version", None)
        line = f"{key}|{code_version}|{','.join(parents)}|{describe_condition(condition)}\n"
        digest.update(line.encode())
    return digest.hexdigest()


def _targets(sensor, asset_graph) -> Iterable[tuple[object, object, dg.AutomationCondition]]:
    """Each entity the sensor evaluates, its graph node and its condition, as Dagster picks them."""
    selection = sensor.asset_selection
    keys = selection.resolve(asset_graph) | selection.resolve_checks(asset_graph)
    for key in keys:
        node = asset_graph.get(key)
        condition = node.automation_condition or sensor.default_condition
        if condition is not None:
            yield key, node, condition


def _memoized(function):
    """`function` of a condition, computed once per condition object for one call: conditions
    are shared between the assets of one policy."""
    results: dict[int, tuple[object, object]] = {}

    def call(condition):
        entry = results.get(id(condition))
        if entry is None:
            entry = results[id(condition)] = (condition, function(condition))  # keeps it alive
        return entry[1]

    return call


def _time_kinds(condition: dg.AutomationCondition) -> list[dg.AutomationCondition]:
    """The nodes of `condition` that change with the clock; raises `_Unbounded` for a node that
    is not known to be timeless."""
    found = []
    stack = [condition]
    while stack:
        node = stack.pop()
        name = type(node).__name__
        if isinstance(node, Expired | OutsideQuietHours) or name == CRON:
            found.append(node)
        elif name not in TIMELESS:
            raise _Unbounded(f"no known time boundary for {name}")
        stack.extend(node.children)
    return found


# --- The next time boundary ----------------------------------------------------------------------


def next_boundary(
    sensor,
    asset_graph,
    instance: dg.DagsterInstance,
    results: Iterable,
    now: datetime.datetime,
) -> float | None:
    """The earliest time at or after `now` at which a condition of `sensor` may change with the
    clock alone; None when none will. Raises `_Unbounded` when one cannot be computed.

    `results` are the tick's evaluation results: a backoff guard reports when its wait ends.
    """
    time_nodes = _memoized(_time_kinds)
    crons: set[tuple[str, str]] = set()
    windows: set[tuple[int, int, str]] = set()
    ttls_by_key: dict[dg.AssetKey, set[int]] = {}
    for key, _, condition in _targets(sensor, asset_graph):
        for node in time_nodes(condition):
            if isinstance(node, Expired):
                ttls_by_key.setdefault(key, set()).add(node.ttl_seconds)
            elif isinstance(node, OutsideQuietHours):
                windows.add((node.start_minute, node.end_minute, node.timezone))
            else:
                crons.add((node.cron_schedule, node.cron_timezone))
    candidates = [_next_cron_tick(cron, timezone, now) for cron, timezone in crons]
    candidates += [edge for window in windows for edge in _quiet_window_edges(*window, now)]
    candidates += _expiries(instance, ttls_by_key)
    candidates += _backoff_ends(results)
    upcoming = [moment for moment in candidates if moment >= now.timestamp()]
    return min(upcoming) if upcoming else None


def quiet_state_after(
    sensor,
    asset_graph,
    instance: dg.DagsterInstance,
    watch: Watch,
    results: Iterable,
    now: datetime.datetime,
    *,
    requested: bool,
    full_evaluation_every: datetime.timedelta | None,
    partial_after: QuietState | None = None,
) -> QuietState | None:
    """What an evaluated tick leaves for the next one; None when the next must evaluate in full.

    After a full evaluation, the next one is due `full_evaluation_every` later (None: only at a
    real boundary). `partial_after` is the state a partial tick started from: its boundary still
    counts, since the assets the tick left unevaluated reported their backoff ends then, and it
    holds when the next full evaluation is due.
    """
    if watch.definitions is None:
        return None
    try:
        boundaries = [next_boundary(sensor, asset_graph, instance, results, now)]
    except Exception:
        # Unbounded, or a boundary that failed to compute. Skipping is only an optimization:
        # whatever keeps the boundary unknown, the next tick evaluates, and this one keeps its
        # result.
        return None
    if partial_after is not None:
        boundaries.append(partial_after.next_boundary)
    elif full_evaluation_every is not None:
        boundaries.append(now.timestamp() + full_evaluation_every.total_seconds())
    known = [boundary for boundary in boundaries if boundary is not None]
    return QuietState(
        watch.max_storage_id,
        watch.definitions,
        now.timestamp(),
        min(known) if known else None,
        requested,
    )


def _next_cron_tick(cron: str, timezone: str, now: datetime.datetime) -> float:
    # A tick at exactly `now` counts: `cron_tick_passed()` compares the latest tick with the
    # previous evaluation's time inclusively.
    for tick in internals.cron_string_iterator(now.timestamp(), cron, timezone):
        if tick.timestamp() >= now.timestamp():
            return tick.timestamp()
    raise _Unbounded(f"cron '{cron}' has no next tick")  # pragma: no cover - iterators are endless


def _quiet_window_edges(start: int, end: int, timezone: str, now: datetime.datetime) -> list[float]:
    """The starts and ends of the daily quiet window in the next two local days.

    On a day whose UTC offset changes, a local time may not exist or exist twice; each edge is
    then moved earlier by the change, so the tick evaluates no later than the window flips (an
    early evaluation costs time, a late one would hold a request).
    """
    zone = zoneinfo.ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    offset_now = now.astimezone(zone).utcoffset()
    edges = []
    for day in (today + datetime.timedelta(days=n) for n in range(3)):
        for minute in (start, end):
            local = datetime.datetime.combine(day, datetime.time(minute // 60, minute % 60), zone)
            margin = abs(local.utcoffset() - offset_now)
            edges.append((local - margin).timestamp())
    return edges


def _expiries(instance: dg.DagsterInstance, ttls_by_key: Mapping[dg.AssetKey, set[int]]) -> list[float]:
    """When each TTL'd asset's latest materialization expires: one query for all of them."""
    if not ttls_by_key:
        return []
    expiries = []
    for record in instance.get_asset_records(list(ttls_by_key)):
        latest = record.asset_entry.last_materialization_record
        if latest is not None:
            expiries += [latest.timestamp + ttl for ttl in ttls_by_key[record.asset_entry.asset_key]]
    return expiries


def _backoff_ends(results: Iterable) -> list[float]:
    """When each backoff wait reported by the tick's backoff guards ends."""
    ends = []
    stack = list(results)
    while stack:
        result = stack.pop()
        if isinstance(result.condition, BackoffAllows):
            value = (result.serializable_evaluation.metadata or {}).get(NEXT_ALLOWED)
            if value is not None:
                ends.append(float(getattr(value, "value", value)))
        stack.extend(result.child_results)
    return ends
