"""The automation sensor the library ships: Dagster's automation condition sensor, evaluated in the
user-code server, with the audit trail (see `audit.py`) added to every tick."""

import datetime
import functools
import json

import dagster as dg

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation import decision_log, partial_tick, quiet_tick
from dagster_autopilot.automation.audit import (
    TickSummary,
    decide,
    priorities_of,
    run_tags_of,
    tag_run_request,
)


class AutopilotAutomationSensor(dg.AutomationConditionSensorDefinition):
    """An automation condition sensor evaluated in the user-code server, with the audit trail.

    The guardrails are custom conditions, which only a user-code sensor can evaluate. Every run it
    requests carries `trigger=auto-materialize`, its reasons and priority (see `audit.py`), and each
    tick logs one structured line per decision plus the tick's counters.

    Ticks are incremental: a tick that nothing can have changed since the previous evaluation is
    skipped (`quiet_tick.py`), and a busy tick evaluates only the assets its events can affect
    (`partial_tick.py`); every asset is still evaluated at least every `full_evaluation_every`
    (None: only when a time boundary or the definitions call for it). `incremental=False`
    evaluates every asset on every tick.
    """

    def __init__(
        self,
        name: str,
        *,
        target,
        incremental: bool = True,
        full_evaluation_every: datetime.timedelta | None = quiet_tick.FULL_EVALUATION_EVERY,
        **kwargs,
    ):
        kwargs.pop("use_user_code_server", None)
        super().__init__(name, target=target, use_user_code_server=True, **kwargs)
        self.incremental = incremental
        self.full_evaluation_every = full_evaluation_every
        # The base class wires Dagster's own evaluation; swap in the audited one.
        internals.set_sensor_evaluation(self, functools.partial(_evaluate_audited, self))

    def with_attributes(self, *, jobs=None, metadata=None) -> "AutopilotAutomationSensor":
        arguments = internals.sensor_constructor_arguments(self)
        if metadata is not None:
            arguments["metadata"] = metadata
        return AutopilotAutomationSensor(
            self.name,
            default_status=self.default_status,
            minimum_interval_seconds=self.minimum_interval_seconds,
            description=self.description,
            incremental=self.incremental,
            full_evaluation_every=self.full_evaluation_every,
            **arguments,
        )


def _evaluate_audited(sensor: AutopilotAutomationSensor, context: dg.SensorEvaluationContext):
    result, _ = evaluate_sensor_tick(sensor, context, incremental=sensor.incremental)
    return result


def evaluate_sensor_tick(
    sensor: dg.AutomationConditionSensorDefinition,
    context: dg.SensorEvaluationContext,
    evaluation_time: datetime.datetime | None = None,
    *,
    incremental: bool = True,
) -> tuple[dg.SensorResult, TickSummary]:
    """One tick of an automation sensor, as Dagster's user-code evaluation does it, plus the audit.

    Returns the sensor result (run requests tagged per run) and the tick's decisions.
    `evaluation_time` defaults to Dagster's clock (tests pass a controlled one). With
    `incremental`, a tick that nothing can have changed since the previous evaluated tick is
    skipped: no decisions, the same cursor, and a skip reason (see `quiet_tick.py`); a busy tick
    evaluates only the assets that what happened since can affect (see `partial_tick.py`).
    """
    asset_graph = context.repository_def.asset_graph
    now = evaluation_time or internals.get_current_datetime()
    watch = quiet_tick.Watch.of(sensor, asset_graph, context.instance) if incremental else None
    state = quiet_tick.read_state(context.cursor) if watch is not None else None
    if state is not None and state.allows_skip(now, watch):
        return _quiet(sensor, context, state), TickSummary([])
    cursor = quiet_tick.read_cursor(context.cursor, asset_graph, sensor.name)
    evaluation_context = internals.AutomationTickEvaluationContext(
        evaluation_id=cursor.evaluation_id,
        instance=context.instance,
        asset_graph=asset_graph,
        cursor=cursor,
        materialize_run_tags=sensor.run_tags,
        observe_run_tags={},
        auto_observe_asset_keys=set(),
        asset_selection=sensor.asset_selection,
        emit_backfills=sensor.emit_backfills,
        default_condition=sensor.default_condition,
        logger=context.log,
        evaluation_time=now,
    )
    limit = internals.MAX_ASSETS_PER_USER_CODE_SENSOR
    if evaluation_context.total_keys > limit:
        raise dg.DagsterInvalidInvocationError(
            f"Automation sensor '{sensor.name}' targets {evaluation_context.total_keys} assets or "
            f"checks, more than the {limit} a user-code sensor may evaluate."
        )
    targeted = internals.evaluated_entity_keys(evaluation_context)
    scope = None
    if state is not None and state.allows_partial(now, watch):
        scope = partial_tick.scope_of(
            targeted,
            sensor.default_condition,
            asset_graph,
            context.instance,
            cursor,
            state.max_storage_id,
        )
    if scope is not None:
        internals.narrow_evaluation(
            evaluation_context, lambda requests: partial_tick.EvaluatedKeys(scope, requests)
        )
        internals.prefetch_asset_records(evaluation_context, scope.prefetch)
    captured = internals.capture_evaluation_results(evaluation_context)
    run_requests, new_cursor, evaluations = evaluation_context.evaluate()
    results = captured[0] if captured else []
    if scope is not None:
        evaluated = {result.key for result in results}
        unevaluated = [key for key in targeted if key not in evaluated]
        new_cursor = internals.keep_condition_cursors(new_cursor, cursor, unevaluated)

    summary = TickSummary([d for r in results if (d := decide(r))])
    decisions = {decision.key: decision for decision in summary.decisions}
    requested = {key for rr in run_requests for key in (rr.asset_selection or [])}
    priorities = priorities_of(asset_graph, requested)
    run_tags = run_tags_of(asset_graph, requested)
    tagged = [tag_run_request(rr, decisions, priorities, run_tags) for rr in run_requests]
    policies = decision_log.policies_of(asset_graph, decisions)
    for decision in summary.decisions:
        record = decision.as_log_record()
        # The decision in words, as `autopilot explain` says it.
        record["sentence"] = decision_log.decision_sentence(decision, policies.get(decision.key), now)
        context.log.info(f"autopilot decision {json.dumps(record)}")
    waiting = decision_log.waiting_for_cron(results, decisions, asset_graph, now)
    if waiting:
        context.log.info(f"autopilot waiting {json.dumps(waiting)}")
    scale = {"evaluated": len(results), "targeted": len(targeted)}
    context.log.info(
        f"autopilot tick {json.dumps({'sensor': sensor.name, **summary.counters, **scale})}"
    )
    state_after = None
    if watch is not None:
        state_after = quiet_tick.quiet_state_after(
            sensor,
            asset_graph,
            context.instance,
            watch,
            results,
            now,
            requested=bool(run_requests),
            full_evaluation_every=getattr(
                sensor, "full_evaluation_every", quiet_tick.FULL_EVALUATION_EVERY
            ),
            partial_after=state if scope is not None else None,
        )
    result = dg.SensorResult(
        run_requests=tagged,
        cursor=quiet_tick.serialize_cursor(new_cursor, state_after, sensor.name),
        automation_condition_evaluations=evaluations,
    )
    return result, summary


def _quiet(sensor, context: dg.SensorEvaluationContext, state: quiet_tick.QuietState) -> dg.SensorResult:
    """A skipped tick: the previous cursor, nothing requested, and a line in the tick's log."""

    def iso(timestamp: float | None) -> str | None:
        return (
            None
            if timestamp is None
            else datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()
        )

    record = {
        "sensor": sensor.name,
        "skipped": "quiet",
        "evaluated_at": iso(state.evaluated_at),
        "next_boundary": iso(state.next_boundary),
    }
    context.log.info(f"autopilot tick {json.dumps(record)}")
    reason = (
        f"Quiet: no new event, definitions change or time boundary since the evaluation at "
        f"{record['evaluated_at']}"
    )
    return dg.SensorResult(skip_reason=reason, cursor=context.cursor)
