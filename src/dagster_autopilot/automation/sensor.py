"""The automation sensor the library ships: Dagster's automation condition sensor, evaluated in the
user-code server, with the audit trail (see `audit.py`) added to every tick."""

import datetime
import functools
import json
from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.automation_condition_sensor_definition import MAX_ENTITIES
from dagster._core.definitions.declarative_automation.automation_condition import AutomationResult
from dagster._core.definitions.sensor_definition import wrap_sensor_evaluation
from dagster._core.errors import DagsterInvalidInvocationError

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
    """

    def __init__(self, name: str, *, target, **kwargs):
        kwargs.pop("use_user_code_server", None)
        super().__init__(name, target=target, use_user_code_server=True, **kwargs)
        evaluate = functools.partial(_evaluate_audited, self)
        # The base class wires Dagster's own evaluation; swap in the audited one.
        self._raw_fn = evaluate
        self._evaluation_fn = wrap_sensor_evaluation(self.name, evaluate)

    def with_attributes(self, *, jobs=None, metadata=None) -> "AutopilotAutomationSensor":
        return AutopilotAutomationSensor(
            self.name,
            target=self._sensor_target,
            tags=self._tags,
            run_tags=self._run_tags,
            default_status=self.default_status,
            minimum_interval_seconds=self.minimum_interval_seconds,
            description=self.description,
            metadata=metadata if metadata is not None else self._metadata,
            emit_backfills=self._emit_backfills,
        )


def _evaluate_audited(sensor: AutopilotAutomationSensor, context: dg.SensorEvaluationContext):
    result, _ = evaluate_sensor_tick(sensor, context)
    return result


def evaluate_sensor_tick(
    sensor: dg.AutomationConditionSensorDefinition,
    context: dg.SensorEvaluationContext,
    evaluation_time: datetime.datetime | None = None,
) -> tuple[dg.SensorResult, TickSummary]:
    """One tick of an automation sensor, as Dagster's user-code evaluation does it, plus the audit.

    Returns the sensor result (run requests tagged per run) and the tick's decisions.
    `evaluation_time` defaults to now (tests pass a controlled clock).
    """
    from dagster._core.definitions.automation_tick_evaluation_context import (
        AutomationTickEvaluationContext,
    )
    from dagster._daemon.asset_daemon import (
        asset_daemon_cursor_from_instigator_serialized_cursor,
        asset_daemon_cursor_to_instigator_serialized_cursor,
    )

    asset_graph = context.repository_def.asset_graph
    cursor = asset_daemon_cursor_from_instigator_serialized_cursor(context.cursor, asset_graph)
    evaluation_context = AutomationTickEvaluationContext(
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
        evaluation_time=evaluation_time,
    )
    if evaluation_context.total_keys > MAX_ENTITIES:
        raise DagsterInvalidInvocationError(
            f"Automation sensor '{sensor.name}' targets {evaluation_context.total_keys} assets or "
            f"checks, more than the {MAX_ENTITIES} a user-code sensor may evaluate."
        )
    # Dagster's evaluate() keeps the per-asset results to itself; capture them on the way out.
    evaluator = evaluation_context._evaluator
    original_evaluate = evaluator.evaluate
    captured: list[Sequence[AutomationResult]] = []

    def evaluate_and_capture():
        results, subsets = original_evaluate()
        captured.append(results)
        return results, subsets

    evaluator.evaluate = evaluate_and_capture
    run_requests, new_cursor, evaluations = evaluation_context.evaluate()

    summary = TickSummary([d for r in (captured[0] if captured else []) if (d := decide(r))])
    decisions = {decision.key: decision for decision in summary.decisions}
    requested = {key for rr in run_requests for key in (rr.asset_selection or [])}
    priorities = priorities_of(asset_graph, requested)
    run_tags = run_tags_of(asset_graph, requested)
    tagged = [tag_run_request(rr, decisions, priorities, run_tags) for rr in run_requests]
    for decision in summary.decisions:
        context.log.info(f"autopilot decision {json.dumps(decision.as_log_record())}")
    context.log.info(f"autopilot tick {json.dumps({'sensor': sensor.name, **summary.counters})}")
    result = dg.SensorResult(
        run_requests=tagged,
        cursor=asset_daemon_cursor_to_instigator_serialized_cursor(new_cursor),
        automation_condition_evaluations=evaluations,
    )
    return result, summary
