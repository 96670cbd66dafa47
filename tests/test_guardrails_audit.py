"""The audit trail: runs that the real automation sensor launched carry their trigger and reasons."""

import datetime

import dagster as dg
from dagster._core.test_utils import freeze_time
from harness import (
    ANALYTICS_ASSETS,
    MONDAY_1AM,
    SEEDS,
    VIEWS,
    Ticker,
    _stand_in_assets,
    run_at_clock,
    with_policies,
)

from dagster_autopilot.automation.sensor import AutopilotAutomationSensor, evaluate_sensor_tick

EXPIRED_VIEW = "stg_customers"
MISSING = {"raw_orders", "stg_orders"}
# The analytics project only: other assets of the project have their own tests.
ANALYTICS = dg.AssetSelection.assets(*ANALYTICS_ASSETS)


def test_the_sensor_tags_the_runs_it_launches_and_counts_its_decisions(project_defs):
    automation = [
        s for s in project_defs.sensors if isinstance(s, dg.AutomationConditionSensorDefinition)
    ]
    assert automation and all(isinstance(s, AutopilotAutomationSensor) for s in automation)
    sensor = AutopilotAutomationSensor("audited", target=ANALYTICS)
    assets = with_policies(
        project_defs, {EXPIRED_VIEW: {"freshness": {"ttl": "6h"}, "priority": 7}}
    ).assets
    defs = dg.Definitions(assets=assets, sensors=[sensor], resources=project_defs.resources)
    repository = defs.get_repository_def()
    now = datetime.datetime.now(datetime.UTC)
    built_at = now - datetime.timedelta(hours=7)

    with dg.instance_for_test() as instance:
        everything = {spec.key.to_user_string() for a in defs.assets for spec in a.specs} - MISSING
        with freeze_time(built_at):
            for key in sorted(everything):
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))

        # The sensor as the daemon calls it: its own evaluation function, real clock.
        context = dg.build_sensor_context(instance=instance, repository_def=repository)
        data = sensor.evaluate_tick(context)
        assert len(data.run_requests) == 1
        request = data.run_requests[0]
        assert {k.to_user_string() for k in request.asset_selection} == MISSING | {EXPIRED_VIEW}
        # Launch what it requested, with its tags, as the daemon would.
        launched = dg.materialize(
            [_stand_in_assets(defs)],
            selection=list(request.asset_selection),
            instance=instance,
            tags=request.tags,
        )
        run = instance.get_run_by_id(launched.run_id)
        assert run.tags["trigger"] == "auto-materialize"
        # stg_orders is missing, and its parent is requested in the same run.
        assert run.tags["autopilot/reason"] == "missing,deps_updated,expired"
        assert run.tags["autopilot/reasons_by_asset"] == (
            '{"raw_orders":["missing"],"stg_customers":["expired"],'
            '"stg_orders":["missing","deps_updated"]}'
        )
        assert run.tags["autopilot/expired_materialization"] == built_at.isoformat()
        assert run.tags["dagster/priority"] == "7"
        assert run.tags["dagster/sensor_name"] == "audited"
        assert run.tags["autopilot/dbt_project"] == "analytics", "the run queue's per-project limit"
        auto_runs = instance.get_runs(dg.RunsFilter(tags={"trigger": "auto-materialize"}))
        assert [r.run_id for r in auto_runs] == [launched.run_id]


def test_counters_and_decisions_per_tick(project_defs):
    sensor = AutopilotAutomationSensor("counted", target=ANALYTICS)
    defs = dg.Definitions(assets=project_defs.assets, sensors=[sensor], resources=project_defs.resources)
    repository = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        ticker = Ticker(defs, instance, datetime.datetime.now(datetime.UTC))
        running = ticker.start_run({"raw_customers"})
        context = dg.build_sensor_context(instance=instance, repository_def=repository)
        result, summary = evaluate_sensor_tick(sensor, context)
        requested = {k.to_user_string() for r in result.run_requests for k in r.asset_selection}
        assert requested == {"raw_orders", "stg_orders"}
        outcomes = {d.key.to_user_string(): d.outcome for d in summary.decisions}
        assert outcomes == {
            "raw_orders": "requested",
            "stg_orders": "requested",
            "raw_customers": "skipped_in_progress",
            "stg_customers": "skipped_in_progress",  # its parent is in progress
        }
        assert summary.counters == {
            "requested": 2,
            "skipped_in_progress": 2,
            "backed_off": 0,
            "paused": 0,
            "quiet_hours": 0,
        }
        assert all("missing" in d.reasons for d in summary.decisions)
        ticker.cancel_run(running)


def test_a_paused_decision_says_how_to_lift_the_pause(project_defs):
    sensor = AutopilotAutomationSensor("pausing", target=ANALYTICS)
    policies = {"stg_orders": {"backoff": {"base": "1m", "max_failures": 1}}}
    defs = dg.Definitions(
        assets=with_policies(project_defs, policies).assets,
        sensors=[sensor],
        resources=project_defs.resources,
    )
    repository = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        ticker = Ticker(defs, instance, MONDAY_1AM)
        cursor = None

        def tick() -> dict[str, dict]:
            nonlocal cursor
            ticker.now += datetime.timedelta(seconds=30)
            context = dg.build_sensor_context(
                instance=instance, repository_def=repository, cursor=cursor
            )
            result, summary = evaluate_sensor_tick(sensor, context, evaluation_time=ticker.now)
            cursor = result.cursor
            return {d.key.to_user_string(): d.as_log_record() for d in summary.decisions}

        run_at_clock(ticker, SEEDS | VIEWS)
        tick()
        run_at_clock(ticker, {"raw_orders"})
        assert tick()["stg_orders"]["decision"] == "requested"
        assert not run_at_clock(ticker, {"stg_orders"}, fail=True).success
        assert tick()["stg_orders"] == {
            "asset": "stg_orders",
            "decision": "paused",
            "reasons": ["deps_updated"],
            "failures": 1,
            "to_resume": "materialize it successfully (a manual run will do) or change its code",
        }
