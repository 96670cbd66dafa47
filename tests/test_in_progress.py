"""`PlannedInActiveRun`: whether a run is building an asset costs one query per tick, not one per
asset, and means what Dagster's `run_in_progress()` means."""

import dagster as dg
import pytest
from harness import ANALYTICS_ASSETS, MONDAY_1AM, SensorTicker

from dagster_autopilot.automation.sensor import AutopilotAutomationSensor


@pytest.fixture
def ticks(project_defs, monkeypatch):
    """The analytics assets' sensor evaluating every tick in full, and a count of the per-asset
    queries for an asset's latest planned run."""
    sensor = AutopilotAutomationSensor(
        "analytics", target=dg.AssetSelection.assets(*ANALYTICS_ASSETS), incremental=False
    )
    with dg.instance_for_test() as instance:
        ticker = SensorTicker(project_defs, instance, MONDAY_1AM, sensor=sensor)
        storage = type(instance.event_log_storage)
        original = storage.get_latest_planned_materialization_info
        ticker.plan_queries = []

        def counted(self, asset_key, partition=None):
            ticker.plan_queries.append(asset_key.to_user_string())
            return original(self, asset_key, partition)

        monkeypatch.setattr(storage, "get_latest_planned_materialization_info", counted)
        yield ticker


def test_no_asset_costs_a_query_while_no_run_is_active(ticks):
    assert ticks.tick() == {"raw_customers", "raw_orders", "stg_customers", "stg_orders"}
    ticks.run_requested({"raw_customers", "raw_orders", "stg_customers", "stg_orders"})
    assert ticks.tick() == set()
    ticks.simulate_run({"raw_customers"})
    ticks.plan_queries.clear()
    assert ticks.tick() == {"stg_customers"}
    assert ticks.plan_queries == [], "no run is active: no asset needs its latest plan read"


def test_an_asset_of_an_active_run_is_in_progress_and_costs_one_query(ticks):
    ticks.tick()
    ticks.run_requested({"raw_customers", "raw_orders", "stg_customers", "stg_orders"})
    assert ticks.tick() == set()
    running = ticks.start_run({"stg_customers"})
    ticks.simulate_run({"raw_customers"})
    ticks.plan_queries.clear()
    assert ticks.tick() == set(), "stale, but its run is in progress"
    assert ticks.plan_queries == ["stg_customers"]
    ticks.cancel_run(running)
    assert ticks.tick() == {"stg_customers"}
