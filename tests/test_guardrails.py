"""Freshness expiry, failure backoff and pause, quiet hours: tick by tick, on the real definitions.

Policies are put on the real assets with `apply_policy` (the entry point every component uses), so
no second copy of the project is loaded. Runs that the guardrails time are made at the ticker's
clock (`run_at_clock`).
"""

import datetime

import dagster as dg
import pytest
from harness import (
    MONDAY_1AM,
    SEEDS,
    TABLES,
    VIEWS,
    AnalyticsTicker,
    Ticker,
    run_at_clock,
    with_policies,
)

MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
SEEDS_AND_VIEWS = SEEDS | VIEWS


@pytest.fixture
def guarded(project_defs):
    """A ticker over the real graph with per-test policies, at Monday 01:00 UTC."""

    def make(policies: dict[str, dict]) -> Ticker:
        return AnalyticsTicker(with_policies(project_defs, policies), instance, MONDAY_1AM)

    with dg.instance_for_test() as instance:
        yield make


def until(ticker: Ticker, hour: int, minute: int, second: int = 0) -> datetime.timedelta:
    """How far the ticker's clock is from the next `hour:minute:second` UTC."""
    target = ticker.now.replace(hour=hour, minute=minute, second=second)
    if target <= ticker.now:
        target += datetime.timedelta(days=1)
    return target - ticker.now


def build_seeds_and_views(ticker: Ticker) -> None:
    assert ticker.tick() == SEEDS_AND_VIEWS
    run_at_clock(ticker, SEEDS_AND_VIEWS)
    assert ticker.tick() == set()


def test_an_expired_asset_is_requested_exactly_once(guarded):
    ticker = guarded({"stg_customers": {"freshness": {"ttl": "6h"}}})
    build_seeds_and_views(ticker)  # stg_customers materialized at 01:00:30
    assert ticker.tick(4 * HOUR) == set(), "05:01, fresh"
    assert ticker.tick(HOUR) == TABLES, "06:01: only the tables' cron"
    ticker.simulate_run(TABLES)
    assert ticker.tick(HOUR) == {"stg_customers"}, "07:01: older than its 6 h TTL"
    running = ticker.start_run({"stg_customers"})
    assert [ticker.tick() for _ in range(3)] == [set()] * 3, "never while its run is in progress"
    ticker.cancel_run(running)
    run_at_clock(ticker, {"stg_customers"})
    assert ticker.tick(6 * HOUR - MINUTE) == set(), "fresh again for 6 h"
    assert ticker.tick(MINUTE) == {"stg_customers"}, "and expires again"


def test_backoff_doubles_then_pauses_and_a_success_lifts_it(guarded):
    ticker = guarded({"stg_customers": {"backoff": {"base": "5m", "cap": "20m", "max_failures": 4}}})
    build_seeds_and_views(ticker)
    ticker.simulate_run({"raw_customers"})
    assert ticker.tick() == {"stg_customers"}
    # Failures at t0 mean no request before t0 + 5m, then 10m, then 20m (the cap).
    for wait in (5, 10, 20):
        assert not run_at_clock(ticker, {"stg_customers"}, fail=True).success
        assert ticker.tick((wait - 1) * MINUTE) == set(), f"held for {wait} minutes"
        assert ticker.tick(MINUTE) == {"stg_customers"}, f"allowed after {wait} minutes"
    run_at_clock(ticker, {"stg_customers"}, fail=True)
    paused = [ticker.tick(4 * HOUR) for _ in range(3)]  # the tables' cron passes meanwhile
    assert all("stg_customers" not in requested for requested in paused), "paused after 4"
    ticker.simulate_run({"raw_customers"})
    assert ticker.tick() == set(), "still paused: an upstream update does not lift it"
    run_at_clock(ticker, {"stg_customers"})  # a manual success
    assert ticker.tick() == set()
    ticker.simulate_run({"raw_customers"})
    assert ticker.tick() == {"stg_customers"}, "the success lifted the pause"


def test_a_code_change_lifts_the_pause(guarded):
    ticker = guarded({"stg_orders": {"backoff": {"base": "1m", "max_failures": 1}}})
    build_seeds_and_views(ticker)
    ticker.simulate_run({"raw_orders"})
    assert ticker.tick() == {"stg_orders"}
    run_at_clock(ticker, {"stg_orders"}, fail=True)
    assert [ticker.tick(MINUTE * 10) for _ in range(2)] == [set()] * 2, "paused after one failure"
    ticker.defs = dg.Definitions(
        assets=[
            a.map_asset_specs(
                lambda s: (
                    s.replace_attributes(code_version="new")
                    if s.key.to_user_string() == "stg_orders"
                    else s
                )
            )
            for a in ticker.defs.assets
        ],
        resources=ticker.defs.resources,
    )
    assert ticker.tick() == {"stg_orders"}, "its code changed: the pause is lifted"


def test_nothing_inside_quiet_hours_and_what_fell_due_right_after(guarded):
    # Lisbon is on UTC in January. The ticker starts at 01:00 UTC, inside the window.
    ticker = guarded({"stg_customers": {"quiet_hours": "22:00-06:00 Europe/Lisbon"}})
    assert ticker.tick() == SEEDS_AND_VIEWS - {"stg_customers"}, "missing, but quiet"
    run_at_clock(ticker, SEEDS_AND_VIEWS - {"stg_customers"})
    quiet = [ticker.tick(2 * HOUR), ticker.tick(2 * HOUR + 59 * MINUTE)]  # 03:00:30, 05:59:30
    assert all("stg_customers" not in requested for requested in quiet), quiet
    assert "stg_customers" in ticker.tick(MINUTE), "requested on the first tick after 06:00"
    run_at_clock(ticker, {"stg_customers"})
    # An upstream update inside the next window waits for its end.
    ticker.tick(until(ticker, 22, 30))
    ticker.simulate_run({"raw_customers"})
    assert "stg_customers" not in ticker.tick(), "22:31, quiet"
    assert "stg_customers" not in ticker.tick(until(ticker, 5, 59, 30)), "05:59:30, quiet"
    assert "stg_customers" in ticker.tick(MINUTE), "06:00:30"


def test_a_failing_cron_table_is_retried_until_its_failure_budget_pauses_it(guarded):
    ticker = guarded({"order_summary": {"backoff": {"base": "1m", "max_failures": 2}}})
    build_seeds_and_views(ticker)
    assert ticker.tick(until(ticker, 6, 0, 30)) == TABLES, "the tables are missing at 06:00"
    run_at_clock(ticker, TABLES - {"order_summary"})
    assert not run_at_clock(ticker, {"order_summary"}, fail=True).success
    assert ticker.tick(MINUTE) == {"order_summary"}, "06:01:30, after its 1 minute backoff"
    assert not run_at_clock(ticker, {"order_summary"}, fail=True).success
    later = [ticker.tick(HOUR) for _ in range(30)]  # Tuesday's cron tick passes meanwhile
    assert later == [set()] * 30, "paused after 2 failures"
    run_at_clock(ticker, {"order_summary"})  # a manual success
    assert [ticker.tick() for _ in range(3)] == [set()] * 3
