"""The whole shipped project, talent chain included, ticked through its shipped automation sensor.

The definitions are loaded as `dg` loads them; the sensor is the one the project declares in
`defs/`, evaluated with its own `evaluate_tick` and its cursor carried between ticks.
"""

import datetime

import dagster as dg
import pytest
from harness import (
    ALL_ASSETS,
    ANALYTICS_ASSETS,
    MONDAY_1AM,
    SEEDS,
    TABLES,
    TALENT_ASSETS,
    VIEWS,
    SensorTicker,
    assets_where,
)

from dagster_autopilot.automation.sensor import AutopilotAutomationSensor


@pytest.fixture
def sensor_ticker(project_defs: dg.Definitions) -> SensorTicker:
    shipped = [s for s in project_defs.sensors if isinstance(s, AutopilotAutomationSensor)]
    assert [s.name for s in shipped] == ["autopilot_automation_sensor"]
    with dg.instance_for_test() as instance:
        yield SensorTicker(project_defs, instance, MONDAY_1AM, sensor=shipped[0])


def _everything(defs: dg.Definitions) -> frozenset[str]:
    return assets_where(defs, lambda spec: True)


def _on_cron(defs: dg.Definitions) -> frozenset[str]:
    # The policy each asset resolved to is tagged on it; `defs/` gives the tables a cron and a
    # rule drops it for the `talent` tag.
    return assets_where(defs, lambda spec: spec.tags.get("autopilot/automation") == "on_cron")


def _talent(defs: dg.Definitions) -> frozenset[str]:
    return assets_where(defs, lambda spec: spec.group_name == "talent")


def test_the_shipped_policies_as_the_sets_this_test_reads(project_defs):
    # The sets below come from tags; this pins what they hold, so a tag that stops being
    # applied fails here rather than making every other assertion vacuous.
    assert _on_cron(project_defs) == {
        "customer_orders",
        "order_summary",
        "customer_segments",
        "daily_revenue",
    }
    assert _talent(project_defs) == {
        "raw_candidates",
        "raw_jobs",
        "normalized_candidates",
        "normalized_jobs",
        "candidate_vectors",
        "job_vectors",
        "matches",
    }
    # The `tag: talent` rule: the talent dbt models are tables, yet follow their inputs.
    talent_tables = assets_where(
        project_defs,
        lambda spec: "talent" in spec.tags and spec.tags.get("dagster/materialization") == "table",
    )
    assert talent_tables == {"normalized_candidates", "normalized_jobs"}
    assert not talent_tables & _on_cron(project_defs)


def test_first_tick_requests_what_the_policies_allow_then_nothing_loops(sensor_ticker):
    defs = sensor_ticker.defs
    first = sensor_ticker.tick()
    assert first == _everything(defs) - _on_cron(defs)
    assert _talent(defs) <= first
    sensor_ticker.run_requested(first)
    for _ in range(4):
        assert sensor_ticker.tick() == set()


def test_a_new_candidate_file_reaches_the_matches_and_nothing_else(sensor_ticker):
    defs = sensor_ticker.defs
    sensor_ticker.run_requested(sensor_ticker.tick())
    assert sensor_ticker.tick() == set()

    # A landed file materializes raw_candidates, as the arrivals sensor's run does.
    sensor_ticker.run_requested(["raw_candidates"])
    reached: set[str] = set()
    for _ in range(5):
        requested = sensor_ticker.tick()
        reached |= requested
        if requested:
            sensor_ticker.run_requested(requested)
    assert reached == {"normalized_candidates", "candidate_vectors", "matches"}
    assert sensor_ticker.tick() == set()
    # The job side and the analytics project are untouched.
    assert not reached & (_everything(defs) - _talent(defs))


@pytest.mark.policy_field("cron")
def test_the_cron_tables_wait_for_their_cron_tick(sensor_ticker):
    defs = sensor_ticker.defs
    sensor_ticker.run_requested(sensor_ticker.tick())
    # Every quarter hour until just before 06:00 UTC: nothing, though the tables were never built.
    six = MONDAY_1AM.replace(hour=6)
    quarter = datetime.timedelta(minutes=15)
    while sensor_ticker.now + quarter < six:
        assert sensor_ticker.tick(quarter) == set()
    assert sensor_ticker.now > six - quarter
    assert sensor_ticker.tick(quarter) == _on_cron(defs)  # the first tick after 06:00
    sensor_ticker.run_requested(_on_cron(defs))
    for _ in range(3):
        assert sensor_ticker.tick() == set()


def test_the_harness_asset_sets_hold_the_assets_they_are_named_for():
    # The other tests compare ticks against these sets, which the harness reads from the
    # definitions' groups and materialization tags; a reading that breaks (a renamed group or tag)
    # gives empty sets that those comparisons could match, so well-known assets pin each set here.
    assert "raw_customers" in SEEDS
    assert "stg_orders" in VIEWS
    assert {"customer_orders", "daily_revenue"} <= TABLES, "an incremental model is a table"
    assert "matches" in TALENT_ASSETS
    assert "normalized_candidates" in TALENT_ASSETS - TABLES, "only analytics tables are TABLES"
    # Every analytics asset is a seed, a view or a table; every asset is analytics or talent.
    assert SEEDS | VIEWS | TABLES == ANALYTICS_ASSETS
    assert ANALYTICS_ASSETS | TALENT_ASSETS == ALL_ASSETS
