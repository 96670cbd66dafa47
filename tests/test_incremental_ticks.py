"""Incremental ticks: the sensor skips a tick only when nothing it reads has changed, a busy tick
evaluates only the assets its events can affect, and every tick requests exactly what a full
evaluation requests.

Two tickers share one instance and one clock: the library's sensor over the shipped analytics
assets, and the same sensor with quiet ticks switched off, each carrying its own cursor. An
evaluation writes nothing to the instance, so both see the same history; every tick compares their
run requests. A skipped tick returns the cursor it was given (an evaluated one always moves it:
its evaluation id grows).
"""

import datetime
import random
from dataclasses import dataclass

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time
from harness import ANALYTICS_ASSETS, MONDAY_1AM, SEEDS, VIEWS, SensorTicker, run_at_clock, with_policies

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation import quiet_tick
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor
from dagster_autopilot.automation.status import read_sensor_cursor

SECOND = datetime.timedelta(seconds=1)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)


def _selections(ticker: SensorTicker) -> list[frozenset[str]]:
    return sorted(
        (frozenset(k.to_user_string() for k in r.asset_selection) for r in ticker.requests),
        key=sorted,
    )


@dataclass
class Pair:
    """The library's sensor (`fast`) and the same sensor evaluating every tick (`full`)."""

    fast: SensorTicker
    full: SensorTicker
    skipped: bool = False
    """Whether the fast path skipped the latest tick."""

    @property
    def now(self) -> datetime.datetime:
        return self.fast.now

    @property
    def instance(self) -> dg.DagsterInstance:
        return self.fast.instance

    def tick(self, advance: datetime.timedelta = datetime.timedelta(seconds=30)) -> set[str]:
        """One tick of both; asserts they request the same runs. Returns the requested keys."""
        before = self.fast.cursor
        expected = self.full.tick(advance)
        requested = self.fast.tick(advance)
        assert requested == expected, f"{self.now}: the fast path requested {requested}"
        assert _selections(self.fast) == _selections(self.full)
        self.skipped = self.fast.cursor == before
        return requested

    def quiet_tick(self, advance: datetime.timedelta = datetime.timedelta(seconds=30)) -> None:
        assert self.tick(advance) == set()
        assert self.skipped, f"{self.now}: nothing changed, yet the tick evaluated"

    def evaluated_tick(self, advance: datetime.timedelta = datetime.timedelta(seconds=30)) -> set[str]:
        requested = self.tick(advance)
        assert not self.skipped, f"{self.now}: the tick was skipped"
        return requested

    def set_defs(self, defs: dg.Definitions) -> None:
        self.fast.defs = self.full.defs = defs

    def settle(self) -> None:
        """Builds what the first tick requests; the next tick evaluates and requests nothing."""
        requested = self.evaluated_tick()
        assert requested
        self.fast.run_requested(requested)
        assert self.evaluated_tick() == set(), "the previous tick requested: this one evaluates"


def test_the_shipped_sensor_skips_quiet_ticks(project_defs):
    shipped = [s for s in project_defs.sensors if isinstance(s, AutopilotAutomationSensor)]
    assert [s.incremental for s in shipped] == [True]


@pytest.fixture
def pair(project_defs):
    """Makes a `Pair` over the real definitions with per-test policies, at Monday 01:00 UTC.

    The sensors evaluate the analytics dbt project's assets: the talent pipeline has the same
    conditions, and would only make each tick and run slower.
    """
    analytics = dg.AssetSelection.assets(*ANALYTICS_ASSETS)
    full_sensor = AutopilotAutomationSensor("analytics", target=analytics, incremental=False)

    def make(policies: dict[str, dict] | None = None, full_evaluation_every=None) -> Pair:
        """By default no periodic full evaluation: each test says which ticks evaluate."""
        fast_sensor = AutopilotAutomationSensor(
            "analytics", target=analytics, full_evaluation_every=full_evaluation_every
        )
        defs = with_policies(project_defs, policies) if policies else project_defs
        return Pair(
            SensorTicker(defs, instance, MONDAY_1AM, sensor=fast_sensor),
            SensorTicker(defs, instance, MONDAY_1AM, sensor=full_sensor),
        )

    with dg.instance_for_test() as instance:
        yield make


def _with_code_version(defs: dg.Definitions, name: str, code_version: str) -> dg.Definitions:
    """`defs` as a reload after `name`'s code changed would load them."""

    def edit(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key.to_user_string() != name:
            return spec
        return spec.replace_attributes(code_version=code_version)

    assets = [a.map_asset_specs(edit) for a in defs.assets]
    return dg.Definitions(assets=assets, resources=defs.resources)


def until(pair: Pair, hour: int, minute: int, second: int = 0) -> datetime.timedelta:
    """How far the clock is from the next `hour:minute:second` UTC."""
    target = pair.now.replace(hour=hour, minute=minute, second=second)
    if target <= pair.now:
        target += datetime.timedelta(days=1)
    return target - pair.now


# --- Events ---------------------------------------------------------------------------------------


def test_a_materialization_ends_the_quiet(pair):
    ticks = pair()
    ticks.settle()
    ticks.quiet_tick()
    ticks.quiet_tick(HOUR)
    ticks.fast.simulate_run({"raw_customers"})
    assert ticks.evaluated_tick() == {"stg_customers"}


def test_a_run_that_starts_or_fails_ends_the_quiet(pair):
    # A 1 s backoff: the failed asset is requested again on the first tick after its failure.
    ticks = pair({"stg_customers": {"backoff": {"base": "1s"}}})
    ticks.settle()
    ticks.quiet_tick()
    running = ticks.fast.start_run({"stg_customers"})
    assert ticks.evaluated_tick() == set(), "the run started"
    ticks.fast.simulate_run({"raw_customers"})
    assert ticks.evaluated_tick() == set(), "stale, but its run is in progress"
    ticks.quiet_tick()
    with freeze_time(ticks.now):
        ticks.instance.report_run_failed(running)
    assert ticks.evaluated_tick() == {"stg_customers"}, "its backoff has passed"


def test_a_code_version_change_after_a_reload_ends_the_quiet(pair):
    ticks = pair()
    ticks.settle()
    ticks.quiet_tick()
    ticks.set_defs(_with_code_version(ticks.fast.defs, "stg_orders", "edited"))
    assert ticks.evaluated_tick() == {"stg_orders"}
    ticks.fast.run_requested({"stg_orders"})
    assert ticks.evaluated_tick() == set()
    ticks.quiet_tick()


# --- Time boundaries ------------------------------------------------------------------------------


@pytest.mark.policy_field("cron")
def test_the_cron_tick_ends_the_quiet(pair):
    ticks = pair()
    ticks.settle()  # the tables are missing, and wait for their 06:00 cron tick
    ticks.quiet_tick(until(ticks, 5, 59, 59))
    tables = ticks.evaluated_tick(datetime.timedelta(seconds=1))  # 06:00:00, the tick itself
    assert {"customer_orders", "daily_revenue"} <= tables


def test_a_ttl_expiry_ends_the_quiet(pair):
    ticks = pair({"stg_customers": {"freshness": {"ttl": "1h"}}})
    ticks.settle()  # stg_customers materialized at 01:00:30
    ticks.quiet_tick(58 * MINUTE)
    ticks.quiet_tick(MINUTE)  # 02:00:00
    assert ticks.evaluated_tick(MINUTE) == {"stg_customers"}, "02:01:00, older than 1 h"


def test_the_end_of_a_backoff_wait_ends_the_quiet(pair):
    ticks = pair({"stg_customers": {"backoff": {"base": "5m"}}})
    ticks.settle()
    ticks.fast.simulate_run({"raw_customers"})
    assert ticks.evaluated_tick() == {"stg_customers"}
    assert not run_at_clock(ticks.fast, {"stg_customers"}, fail=True).success
    assert ticks.evaluated_tick() == set(), "backing off for 5 minutes"
    ticks.quiet_tick(4 * MINUTE)
    assert ticks.evaluated_tick(MINUTE) == {"stg_customers"}, "5 minutes after the failure"


def test_the_start_and_end_of_quiet_hours_end_the_quiet(pair):
    ticks = pair({"stg_customers": {"quiet_hours": "02:00-04:00"}})
    ticks.settle()
    ticks.quiet_tick(until(ticks, 1, 59, 30))
    assert ticks.evaluated_tick() == set(), "02:00:00, the window starts"
    ticks.fast.simulate_run({"raw_customers"})
    assert ticks.evaluated_tick() == set(), "stale, but quiet"
    ticks.quiet_tick(HOUR)
    ticks.quiet_tick(until(ticks, 3, 59, 59))
    assert ticks.evaluated_tick(datetime.timedelta(seconds=1)) == {"stg_customers"}, "04:00:00"


# --- The cursor -----------------------------------------------------------------------------------


def test_the_cursor_reads_as_dagsters_and_an_older_one_evaluates(pair):
    ticks = pair()
    ticks.settle()
    graph = ticks.fast.defs.resolve_asset_graph()
    state = quiet_tick.read_state(ticks.fast.cursor)
    assert state is not None and state.next_boundary == MONDAY_1AM.replace(hour=6).timestamp()
    # Dagster's reader (the daemon's, the UI's, the status's) reads it as the cursor it holds.
    assert read_sensor_cursor(ticks.fast.cursor, graph).evaluation_id == (
        read_sensor_cursor(ticks.full.cursor, graph).evaluation_id
    )
    # A cursor in Dagster's own format, as an older version stored it, has no quiet state.
    assert quiet_tick.read_state(ticks.full.cursor) is None
    ticks.fast.cursor = ticks.full.cursor
    assert ticks.evaluated_tick() == set()
    ticks.quiet_tick()


# --- Busy ticks ---------------------------------------------------------------------------------


def evaluated(ticker: SensorTicker) -> set[str]:
    """The assets the ticker's latest tick evaluated: their cursors carry the tick's time."""
    cursor = read_sensor_cursor(ticker.cursor, ticker.defs.resolve_asset_graph())
    return {
        c.key.to_user_string()
        for c in cursor.previous_condition_cursors
        if c.effective_timestamp == ticker.now.timestamp()
    }


def test_a_busy_tick_evaluates_only_what_its_events_can_affect(pair):
    ticks = pair()
    ticks.settle()
    ticks.quiet_tick()
    ticks.fast.simulate_run({"raw_customers"})
    assert ticks.evaluated_tick() == {"stg_customers"}
    # The seed, its child, and the table that reads it through that view.
    assert evaluated(ticks.fast) == {"raw_customers", "stg_customers", "customer_orders"}
    assert evaluated(ticks.full) == set(ANALYTICS_ASSETS)
    ticks.fast.run_requested({"stg_customers"})
    assert ticks.evaluated_tick() == set()
    assert evaluated(ticks.fast) == {"stg_customers", "customer_orders"}, "built, and its reader"
    ticks.quiet_tick()


def test_a_busy_tick_evaluates_the_readers_of_what_it_requests(pair):
    # On change all the way down: a seed update is requested through both tables in one tick.
    ticks = pair({"customer_orders": {"cron": None}, "customer_segments": {"cron": None}})
    ticks.settle()
    ticks.quiet_tick()
    ticks.fast.simulate_run({"raw_customers"})
    changed = {"stg_customers", "customer_orders", "customer_segments"}
    assert ticks.evaluated_tick() == changed
    # customer_segments reads no touched asset: it is evaluated because its parent is requested.
    assert evaluated(ticks.fast) == {"raw_customers", *changed}


def test_a_busy_tick_keeps_the_state_of_the_assets_it_does_not_evaluate(pair):
    ticks = pair()
    ticks.settle()
    ticks.quiet_tick(until(ticks, 5, 58))
    ticks.fast.simulate_run({"raw_orders"})
    assert ticks.evaluated_tick() == {"stg_orders"}
    assert "customer_segments" not in evaluated(ticks.fast)
    ticks.fast.run_requested({"stg_orders"})
    assert ticks.evaluated_tick() == set()
    ticks.quiet_tick()  # 05:59:30
    # The cron tick evaluates every asset; the unevaluated ones still had their state.
    tables = ticks.evaluated_tick()
    assert {"customer_orders", "daily_revenue", "customer_segments"} <= tables
    assert evaluated(ticks.fast) == set(ANALYTICS_ASSETS)


def test_every_asset_is_evaluated_at_least_every_ten_minutes(pair):
    ticks = pair(full_evaluation_every=10 * MINUTE)
    ticks.settle()
    ticks.quiet_tick(4 * MINUTE)
    ticks.fast.simulate_run({"raw_customers"})
    ticks.evaluated_tick(4 * MINUTE)
    assert evaluated(ticks.fast) == {"raw_customers", "stg_customers", "customer_orders"}
    ticks.fast.run_requested({"stg_customers"})
    ticks.evaluated_tick()
    ticks.quiet_tick()
    # 10 minutes after the last full evaluation (the settling ticks at 01:00:30 and 01:01:00).
    ticks.evaluated_tick(2 * MINUTE)
    assert evaluated(ticks.fast) == set(ANALYTICS_ASSETS)
    ticks.quiet_tick()


def test_the_cursor_written_from_kept_state_is_the_one_dagster_writes(pair):
    ticks = pair()
    ticks.settle()
    ticks.fast.simulate_run({"raw_customers"})
    ticks.evaluated_tick()  # partial: most assets keep the state, and its JSON, they had
    graph = ticks.fast.defs.resolve_asset_graph()
    cursor = quiet_tick.read_cursor(ticks.fast.cursor, graph, "analytics")
    assert cursor == read_sensor_cursor(ticks.fast.cursor, graph), "the object kept is the cursor"
    written = quiet_tick._cursor_json(cursor, "analytics")  # the kept JSON of each asset's state
    assert written == internals.serialize_asset_daemon_cursor(cursor)


# --- A random history -----------------------------------------------------------------------------


def test_a_random_history_requests_what_a_full_evaluation_requests(pair):
    """Random updates, failures, runs, cancels and an edit, with clock jumps across the crons, a
    TTL, a backoff and quiet hours: every tick compared with a full evaluation."""
    rng = random.Random(18)
    ticks = pair(
        {
            "stg_customers": {"freshness": {"ttl": "2h"}, "quiet_hours": "02:00-03:30"},
            "stg_orders": {"backoff": {"base": "10m", "max_failures": 3}},
        }
    )
    seeds, views = sorted(SEEDS), sorted(VIEWS)
    requested, running, skipped = set(), [], 0
    for step in range(20):
        event = rng.random()
        if requested:
            run_at_clock(ticks.fast, requested)  # as the daemon launches the request
        elif event < 0.1:
            run_at_clock(ticks.fast, {rng.choice(seeds)})
        elif event < 0.2:
            run_at_clock(ticks.fast, {rng.choice(views)}, fail=True)
        elif event < 0.3:
            running.append(ticks.fast.start_run({rng.choice(views)}))
        elif event < 0.4 and running:
            ticks.fast.cancel_run(running.pop())
        if step == 12:
            ticks.set_defs(_with_code_version(ticks.fast.defs, rng.choice(views), "edited"))
        requested = ticks.tick(rng.choice([SECOND * 30, SECOND * 30, 10 * MINUTE, HOUR, 4 * HOUR]))
        skipped += ticks.skipped
    assert skipped >= 4, "the fast path skipped too few ticks to be tested"
