"""Busy ticks: evaluate only the assets that what happened since the previous tick can affect.

When events arrived since the previous evaluated tick, most assets still see exactly what they saw
then. Re-evaluating one of them returns the result it already has, so a tick evaluates only:

- the assets an event touched since the previous tick: a materialization, observation, planned
  materialization, failure to materialize, wipe or asset check event of the asset, or a status
  change (queued, started, succeeded, failed, cancelled...) of a run that planned it;
- the assets that read a touched asset: its children, and the assets behind whose views it sits
  (`upstream.upstream_keys`, what `UpstreamUpdated` reads);
- the assets requested on their previous evaluation (`newly_requested()` turns false on the next);
- level by level, in Dagster's own evaluation loop, each asset that reads an asset requested on
  this very tick (`UpstreamUpdated` counts a parent that will run in the same run).

Every other asset keeps its previous result and its cursor, as if Dagster had evaluated it again:
its operands read the event log since its own previous evaluation (each asset's cursor keeps the
storage id it last read), and nothing they read changed.

That holds only when no time boundary passed (`quiet_tick.QuietState.next_boundary`: a cron tick,
a TTL expiry, a backoff end, quiet hours starting or ending) and only for conditions built from
operands whose value moves with those inputs alone (`_SETTLED`). Otherwise, and whenever the events
cannot be read or mapped to assets (too many, a run without its plan), the tick evaluates every
asset: a wrong "unchanged" is a lost update, an extra evaluation only costs time. A full evaluation
also runs at least every `quiet_tick.FULL_EVALUATION_EVERY`.
"""

import weakref
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import dagster as dg

from dagster_autopilot.automation import quiet_tick
from dagster_autopilot.automation.guardrails import Expired, OutsideQuietHours
from dagster_autopilot.automation.upstream import upstream_keys

E = dg.DagsterEventType

# Events read per type before the tick gives up narrowing and evaluates every asset.
EVENT_LIMIT = 10_000

# Events that change what an operand reads about the asset they name.
_ASSET_EVENTS = (
    E.ASSET_MATERIALIZATION,
    E.ASSET_OBSERVATION,
    E.ASSET_MATERIALIZATION_PLANNED,
    E.ASSET_FAILED_TO_MATERIALIZE,
    E.ASSET_WIPED,
)
_CHECK_EVENTS = (E.ASSET_CHECK_EVALUATION, E.ASSET_CHECK_EVALUATION_PLANNED)
# Run status changes: `in_progress()`, `execution_failed()` and the backoff read the status of the
# latest run that planned an asset.
_RUN_EVENTS = (
    E.RUN_ENQUEUED,
    E.RUN_DEQUEUED,
    E.RUN_STARTING,
    E.RUN_START,
    E.RUN_SUCCESS,
    E.RUN_FAILURE,
    E.RUN_CANCELING,
    E.RUN_CANCELED,
)
_PLAN_EVENTS = {E.ASSET_MATERIALIZATION_PLANNED, E.ASSET_CHECK_EVALUATION_PLANNED}

# Conditions whose value, for an asset with no new event on it or on what it reads, not requested
# on its previous evaluation, and with no time boundary passed, is what it was on that evaluation:
# the operands a quiet tick knows to change only with events (`quiet_tick.TIMELESS`) and the time
# operands (a boundary makes the tick evaluate in full), less those true on one evaluation and
# false on the next with nothing new, and the check operands (check events name the check, which
# this module maps, but no library condition needs them). Matched by class name; a condition with
# any other node is always evaluated in full. `WillBeRequestedCondition`, under a deps operator,
# reads whether a parent is requested on this tick: an asset that reads a parent requested on this
# tick is always evaluated.
_SETTLED = (quiet_tick.TIMELESS | {quiet_tick.CRON, Expired.__name__, OutsideQuietHours.__name__}) - {
    "NewlyTrueCondition",
    "InitialEvaluationCondition",
    "CodeVersionChangedCondition",
    "DataVersionChangedCondition",
    "AnyChecksCondition",
    "AllChecksCondition",
    "CheckResultCondition",
}


class _Unmapped(Exception):
    """The events since the previous tick cannot be mapped to the assets they touch."""


@dataclass(frozen=True)
class Scope:
    """What a busy tick evaluates: `candidates`, plus whatever reads an asset requested on it."""

    candidates: frozenset
    reads: Mapping
    """Each targeted entity's inputs: its parents and the assets behind its views."""
    prefetch: frozenset
    """The assets whose records the tick reads first: the candidates, the entities that read
    them, and what each of those reads. Dagster prefetches only the evaluated assets and their
    parents; `UpstreamUpdated` also reads the assets behind views, one query per asset otherwise."""


def scope_of(
    targeted: AbstractSet,
    default_condition: dg.AutomationCondition | None,
    asset_graph,
    instance: dg.DagsterInstance,
    cursor,
    after_storage_id: int,
) -> Scope | None:
    """The part of `targeted` a tick must evaluate, given the events after `after_storage_id` and
    the previous evaluation's `cursor`; None when every asset must be evaluated."""
    inputs = _reads(asset_graph, targeted, default_condition)
    if inputs is None:
        return None
    reads, readers = inputs
    try:
        touched = touched_since(instance, after_storage_id)
    except _Unmapped:
        return None
    candidates = set(touched)
    for key in touched:
        candidates |= readers.get(key, set())
    for key in targeted:
        previous = cursor.get_previous_condition_cursor(key)
        if previous is None or not previous.previous_requested_subset.is_empty:
            candidates.add(key)
    candidates &= targeted
    evaluated = candidates | {reader for key in candidates for reader in readers.get(key, ())}
    prefetch = evaluated | {i for key in evaluated for i in reads.get(key, ())}
    return Scope(
        frozenset(candidates),
        reads,
        frozenset(key for key in prefetch if isinstance(key, dg.AssetKey)),
    )


def touched_since(instance: dg.DagsterInstance, after_storage_id: int) -> set:
    """The assets and checks whose events, or whose runs' status changes, were stored after
    `after_storage_id`. Raises `_Unmapped` when they cannot all be read."""
    storage = instance.event_log_storage
    touched: set = set()
    runs: set[str] = set()
    for event_type in (*_ASSET_EVENTS, *_CHECK_EVENTS, *_RUN_EVENTS):
        entries = storage.get_logs_for_all_runs_by_log_id(
            after_cursor=after_storage_id, dagster_event_type=event_type, limit=EVENT_LIMIT
        )
        if len(entries) >= EVENT_LIMIT:
            raise _Unmapped(f"more than {EVENT_LIMIT} {event_type.value} events")
        for entry in entries.values():
            if event_type in _RUN_EVENTS:
                runs.add(entry.run_id)
            else:
                touched |= _entities_of(entry.dagster_event)
    for run_id in runs:
        planned = storage.get_records_for_run(run_id, of_type=_PLAN_EVENTS, limit=EVENT_LIMIT).records
        if len(planned) >= EVENT_LIMIT:
            raise _Unmapped(f"run {run_id} plans more than {EVENT_LIMIT} assets")
        for record in planned:
            touched |= _entities_of(record.event_log_entry.dagster_event)
    return touched


def _entities_of(event) -> set:
    if event is None:
        raise _Unmapped("an asset event without its Dagster event")
    if event.event_type == E.ASSET_CHECK_EVALUATION:
        data = event.asset_check_evaluation_data
        return {data.asset_key, data.asset_check_key}
    if event.event_type == E.ASSET_CHECK_EVALUATION_PLANNED:
        data = event.asset_check_planned_data
        return {data.asset_key, data.asset_check_key}
    if event.asset_key is None:
        raise _Unmapped(f"a {event.event_type.value} event names no asset")
    return {event.asset_key}


# --- What each entity reads ----------------------------------------------------------------------

# Per asset graph (one per load of the definitions): each targeted entity's inputs and, inverted,
# each asset's targeted readers; None when a condition has an operand outside `_SETTLED`. Keyed by
# the targeted keys and the default condition, since sensors split one graph between them.
_reads_cache: "weakref.WeakKeyDictionary[object, dict[tuple, tuple]]" = weakref.WeakKeyDictionary()


def _reads(asset_graph, targeted: AbstractSet, default_condition) -> tuple[dict, dict] | None:
    try:
        cached = _reads_cache.setdefault(asset_graph, {})
    except TypeError:  # an asset graph that takes no weak reference: computed every tick
        cached = {}
    key = (frozenset(targeted), id(default_condition))
    if key not in cached:
        # The default condition is kept with the result, so its id is not reused meanwhile.
        cached[key] = (default_condition, _compute_reads(asset_graph, key[0], default_condition))
    return cached[key][1]


def _compute_reads(asset_graph, targeted: frozenset, default_condition) -> tuple[dict, dict] | None:
    settled: dict[int, bool] = {}
    reads = {}
    for key in targeted:
        node = asset_graph.get(key)
        condition = node.automation_condition or default_condition
        if condition is not None:
            if id(condition) not in settled:
                settled[id(condition)] = _is_settled(condition)
            if not settled[id(condition)]:
                return None
        if isinstance(key, dg.AssetCheckKey):
            reads[key] = frozenset({key.asset_key})
        else:
            reads[key] = frozenset(node.parent_entity_keys) | upstream_keys(asset_graph, key)
    readers: dict = {}
    for key, inputs in reads.items():
        for upstream in inputs:
            readers.setdefault(upstream, set()).add(key)
    return reads, readers


def _is_settled(condition: dg.AutomationCondition) -> bool:
    stack = [condition]
    while stack:
        node = stack.pop()
        if type(node).__name__ not in _SETTLED:
            return False
        stack.extend(node.children)
    return True


# --- The keys Dagster's evaluation loop asks about -----------------------------------------------


class EvaluatedKeys(AbstractSet):
    """The entities a busy tick evaluates, as the set Dagster's evaluator iterates and tests.

    Dagster's evaluator walks the asset graph level by level and evaluates each entity of a level
    that is `in` its keys, after every earlier level. So membership is decided then: a candidate,
    or an entity that reads an asset requested earlier on this tick (`requests`, the evaluator's
    own record of this tick's requests). Iterating gives the candidates, which the evaluator
    prefetches the asset records of.
    """

    def __init__(self, scope: Scope, requests: Mapping):
        self._scope = scope
        self._requests = requests

    def __contains__(self, key) -> bool:
        if key in self._scope.candidates:
            return True
        inputs = self._scope.reads.get(key)
        if inputs is None:  # not targeted
            return False
        for upstream in inputs:
            subset = self._requests.get(upstream)
            if subset is not None and not subset.is_empty:
                return True
        return False

    def __iter__(self) -> Iterator:
        return iter(self._scope.candidates)

    def __len__(self) -> int:
        return len(self._scope.candidates)
