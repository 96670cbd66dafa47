"""The guardrail conditions Dagster has no built-in for: TTL expiry, quiet hours, failure backoff.

Custom `AutomationCondition` subclasses, so the sensors that evaluate them run in the user-code
server (`use_user_code_server=True`, at most 500 assets per sensor: the sensor component splits).
Each is placed last in an AND, so its instance queries only run for the few assets that would
otherwise be requested this tick.
"""

import datetime
import json
import zoneinfo
from dataclasses import dataclass

import dagster as dg
from dagster import AutomationContext, AutomationResult, DagsterRunStatus

from dagster_autopilot.automation import labels
from dagster_autopilot.automation.policy import BackoffPolicy

# Metadata keys the guardrails put on their evaluation, read by the audit and the status.
EXPIRED_MATERIALIZATION = "expired_materialization_timestamp"
FAILURES = "consecutive_failures"
NEXT_ALLOWED = "next_allowed_timestamp"
IS_PAUSED = "paused"
# How a pause is lifted, shown wherever a pause is: a pause has no end time of its own.
TO_RESUME = "materialize it successfully (a manual run will do) or change its code"
# More failures than any sensible `max_failures` are never needed to decide.
_MAX_FAILURES_READ = 50


def _last_materialization(context: AutomationContext):
    record = context.asset_graph_view.get_inner_queryer_for_back_compat().get_asset_record(context.key)
    entry = record.asset_entry if record else None
    return entry.last_materialization_record if entry else None


@dataclass(frozen=True)
class Expired(dg.AutomationCondition):
    """True when the asset's latest materialization is older than `ttl_seconds`.

    Not Dagster's `FreshnessPolicy` + `freshness_failed()`: that reads a state written by the
    separate freshness daemon on its own cadence, so a request would lag it, and
    `evaluate_automation_conditions` could not test it. A missing asset is not "expired" (it is
    missing, which the policies already request).
    """

    ttl_seconds: int

    @property
    def name(self) -> str:
        return f"expired(ttl={self.ttl_seconds}s)"

    @property
    def description(self) -> str:
        return f"Latest materialization older than {self.ttl_seconds} s"

    @property
    def requires_cursor(self) -> bool:
        return False

    def get_label(self) -> str:
        return labels.EXPIRED

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        if context.candidate_subset.is_empty:
            return AutomationResult(context, context.get_empty_subset())
        latest = _last_materialization(context)
        deadline = context.evaluation_time.timestamp() - self.ttl_seconds
        if latest is None or latest.timestamp > deadline:
            return AutomationResult(context, context.get_empty_subset())
        return AutomationResult(
            context,
            context.candidate_subset,
            metadata={EXPIRED_MATERIALIZATION: dg.MetadataValue.timestamp(latest.timestamp)},
        )


def in_quiet_window(moment: datetime.datetime, start: int, end: int, timezone: str) -> bool:
    """Whether `moment` falls in the daily window [start, end) (minutes of the day, local time)."""
    local = moment.astimezone(zoneinfo.ZoneInfo(timezone))
    minute = local.hour * 60 + local.minute
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # the window spans midnight


@dataclass(frozen=True)
class OutsideQuietHours(dg.AutomationCondition):
    """False inside the daily quiet window, true outside it.

    Not `cron_tick_passed(start).since(cron_tick_passed(end))`: Dagster's cron operand is false on
    a sensor's first tick, so a sensor started (or reset) inside the window would not know it is in
    it. This is a pure function of the evaluation time, with no instance query.
    """

    start_minute: int
    end_minute: int
    timezone: str

    @property
    def name(self) -> str:
        return f"outside_quiet_hours({self.start_minute}-{self.end_minute} {self.timezone})"

    @property
    def description(self) -> str:
        def hhmm(minute: int) -> str:
            return f"{minute // 60:02d}:{minute % 60:02d}"

        return f"Outside {hhmm(self.start_minute)}-{hhmm(self.end_minute)} {self.timezone}"

    @property
    def requires_cursor(self) -> bool:
        return False

    def get_label(self) -> str:
        return labels.OUTSIDE_QUIET_HOURS

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        quiet = in_quiet_window(
            context.evaluation_time, self.start_minute, self.end_minute, self.timezone
        )
        return AutomationResult(
            context, context.get_empty_subset() if quiet else context.candidate_subset
        )


@dataclass(frozen=True)
class FailureState:
    """An asset's consecutive failures and what the backoff policy makes of them."""

    failures: int
    """Failed runs that planned the asset since its last materialization (and code change)."""
    last_failure: float | None
    """When the latest of those runs ended (epoch seconds)."""
    next_allowed: float | None
    """Epoch seconds before which no request is made; None when nothing holds the asset back."""
    paused: bool
    """True after `max_failures` consecutive failures: no request until a success or code change."""

    def allows(self, now: float) -> bool:
        """Whether a request may be made at `now`."""
        return not self.paused and (self.next_allowed is None or now >= self.next_allowed)


def failure_state(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    backoff: BackoffPolicy,
    after_storage_id: int | None,
) -> FailureState:
    """Counts the failed runs that planned `key` after `after_storage_id`.

    The event log of 1.13 writes no ASSET_FAILED_TO_MATERIALIZE events for a failed step, so the
    source is the ASSET_MATERIALIZATION_PLANNED events (one per run that meant to build the asset)
    joined with their runs' status: one event query and one run query per asset. Queued, running
    and cancelled runs are not failures.
    """
    planned = instance.fetch_planned_materializations(
        dg.AssetRecordsFilter(asset_key=key, after_storage_id=after_storage_id),
        limit=_MAX_FAILURES_READ,
    ).records
    run_ids = list({record.run_id for record in planned if record.run_id})
    if not run_ids:
        return FailureState(0, None, None, False)
    runs = instance.get_run_records(
        filters=dg.RunsFilter(run_ids=run_ids, statuses=[DagsterRunStatus.FAILURE])
    )
    ends = [run.end_time or run.update_timestamp.timestamp() for run in runs]
    if not ends:
        return FailureState(0, None, None, False)
    failures, last = len(ends), max(ends)
    paused = backoff.max_failures is not None and failures >= backoff.max_failures
    return FailureState(failures, last, last + backoff.wait_seconds(failures), paused)


@dataclass(frozen=True)
class BackoffAllows(dg.AutomationCondition):
    """True unless the asset is waiting out its backoff or is paused after too many failures.

    Consecutive failures are failed runs that planned the asset since its last successful
    materialization (a manual one counts) and since its code version last changed. The code
    version seen is kept in this node's cursor, with the storage id at which it changed; that is
    updated on every tick, the failure query only for candidates.
    """

    backoff: BackoffPolicy

    @property
    def name(self) -> str:
        backoff = self.backoff
        limits = f"base={backoff.base_seconds}s, cap={backoff.cap_seconds}s, max={backoff.max_failures}"
        return f"backoff_allows({limits})"

    @property
    def description(self) -> str:
        return "Not waiting out a failure backoff, not paused"

    def get_label(self) -> str:
        return labels.BACKOFF_ALLOWS

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        code_version = context.asset_graph.get(context.key).code_version
        state = json.loads(context.cursor) if context.cursor else None
        if state is None:
            state = {"code_version": code_version, "changed_after": None}
        elif state.get("code_version") != code_version:
            state = {"code_version": code_version, "changed_after": context.max_storage_id}
        cursor = json.dumps(state)
        if context.candidate_subset.is_empty:
            return AutomationResult(context, context.get_empty_subset(), cursor=cursor)
        instance = context.asset_graph_view.instance
        record = context.asset_graph_view.get_inner_queryer_for_back_compat().get_asset_record(
            context.key
        )
        entry = record.asset_entry if record else None
        last = entry.last_materialization_record if entry else None
        if entry is None or entry.last_run_id is None or (last and entry.last_run_id == last.run_id):
            # No run has touched the asset since its last materialization (the cached asset record
            # already says so): no failure to count, no query.
            return AutomationResult(context, context.candidate_subset, cursor=cursor)
        points = [p for p in (last.storage_id if last else None, state["changed_after"]) if p]
        failures = failure_state(instance, context.key, self.backoff, max(points) if points else None)
        if failures.allows(context.evaluation_time.timestamp()):
            true_subset = context.candidate_subset
        else:
            true_subset = context.get_empty_subset()
        metadata = {FAILURES: dg.MetadataValue.int(failures.failures)}
        if failures.paused:
            metadata[IS_PAUSED] = dg.MetadataValue.bool(True)
        elif failures.next_allowed is not None:
            metadata[NEXT_ALLOWED] = dg.MetadataValue.timestamp(failures.next_allowed)
        return AutomationResult(context, true_subset, cursor=cursor, metadata=metadata)


def code_changed_after(backoff_cursor: str | None) -> int | None:
    """The storage id after which the asset's code last changed, from a `BackoffAllows` node's
    cursor; failures before it no longer count."""
    if not backoff_cursor:
        return None
    try:
        state = json.loads(backoff_cursor)
    except ValueError:
        return None
    return state.get("changed_after") if isinstance(state, dict) else None
