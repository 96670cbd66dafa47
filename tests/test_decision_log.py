"""The sensor tick's decision log in words, on ticks of the real definitions: each decision's
sentence, and the tables waiting for their cron tick, in `autopilot explain`'s wording."""

import datetime
import json
import logging
from types import SimpleNamespace

import dagster as dg
import pytest
from harness import ANALYTICS_ASSETS, MONDAY_1AM, SEEDS, VIEWS, Ticker, run_at_clock, with_policies

from dagster_autopilot.automation.sensor import AutopilotAutomationSensor, evaluate_sensor_tick

ANALYTICS = dg.AssetSelection.assets(*ANALYTICS_ASSETS)
TICK_LOG = logging.getLogger("autopilot_test_tick")
TABLES = "customer_orders, customer_segments, daily_revenue, order_summary"


def _log_lines(records: list[logging.LogRecord], prefix: str) -> list[dict]:
    lines = []
    for record in records:
        message = record.getMessage()
        if prefix in message:
            lines.append(json.loads(message.split(prefix, 1)[1]))
    return lines


@pytest.fixture
def ticking(project_defs, caplog: pytest.LogCaptureFixture):
    """Ticks of the audited sensor over the analytics assets; each returns its log lines."""
    sensor = AutopilotAutomationSensor("worded", target=ANALYTICS)
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

        def tick() -> tuple[dict[str, dict], list[dict]]:
            nonlocal cursor
            caplog.clear()
            ticker.now += datetime.timedelta(seconds=30)
            # The tick's logger, seen by caplog: the sensor context's writes to the tick's log.
            context = SimpleNamespace(
                instance=instance, repository_def=repository, cursor=cursor, log=TICK_LOG
            )
            with caplog.at_level(logging.INFO, logger=TICK_LOG.name):
                result, _ = evaluate_sensor_tick(sensor, context, evaluation_time=ticker.now)
            cursor = result.cursor
            decisions = _log_lines(caplog.records, "autopilot decision ")
            waiting = _log_lines(caplog.records, "autopilot waiting ")
            return {d["asset"]: d for d in decisions}, waiting

        yield ticker, tick


def test_requested_and_waiting_for_cron(ticking):
    _, tick = ticking
    decisions, waiting = tick()
    assert decisions["raw_orders"]["sentence"] == (
        "raw_orders was requested because it was never materialized."
    )
    # The tables are missing too, but they wait for their 06:00 cron tick.
    assert "customer_orders" not in decisions
    assert waiting == [{"waiting for its cron tick at 2026-01-05T06:00:00+00:00": TABLES}]


def test_a_held_decision_names_its_guard(ticking):
    ticker, tick = ticking
    run_at_clock(ticker, SEEDS | VIEWS)
    tick()
    run_at_clock(ticker, {"raw_orders"})
    assert tick()[0]["stg_orders"]["sentence"] == (
        "stg_orders was requested because a parent was updated."
    )
    assert not run_at_clock(ticker, {"stg_orders"}, fail=True).success
    assert tick()[0]["stg_orders"]["sentence"] == (
        "stg_orders was not requested: it is paused after 1 consecutive failure; to resume, "
        "materialize it successfully (a manual run will do) or change its code "
        "(it is due because a parent was updated)."
    )
