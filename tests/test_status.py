"""The status API and `autopilot status --json` on a seeded instance."""

import datetime
import json
from dataclasses import asdict

import dagster as dg
from harness import MONDAY_1AM, SEEDS, VIEWS, AnalyticsTicker, Ticker, run_at_clock, with_policies
from typer.testing import CliRunner

from dagster_autopilot import cli
from dagster_autopilot.automation.status import as_table, automation_status

MINUTE = datetime.timedelta(minutes=1)


def seed(ticker: Ticker) -> dg.DagsterRun:
    """Seeds and views built at 01:00:30; stg_customers then fails in an automation run at 01:10:30."""
    ticker.tick()
    run_at_clock(ticker, SEEDS | VIEWS)
    ticker.now += 10 * MINUTE
    failed = run_at_clock(ticker, {"stg_customers"}, fail=True)
    run = ticker.instance.get_run_by_id(failed.run_id)
    ticker.instance.add_run_tags(
        run.run_id, {"trigger": "auto-materialize", "autopilot/reason": "deps_updated"}
    )
    return run


def test_status_of_a_seeded_instance(project_defs):
    defs = with_policies(project_defs, {"stg_orders": {"freshness": {"ttl": "6h"}}})
    with dg.instance_for_test() as instance:
        ticker = AnalyticsTicker(defs, instance, MONDAY_1AM)
        run = seed(ticker)
        statuses = {s.asset: s for s in automation_status(defs, instance, now=ticker.now)}

    customers = statuses["stg_customers"]
    assert customers.last_materialization == "2026-01-05T01:00:30+00:00"
    assert customers.last_auto_run.run_id == run.run_id
    assert (customers.last_auto_run.status, customers.last_auto_run.reasons) == (
        "FAILURE",
        "deps_updated",
    )
    assert (customers.backoff.failures, customers.backoff.paused) == (1, False)
    assert customers.backoff.next_allowed == "2026-01-05T01:15:30+00:00", "5 minutes after"
    assert customers.next_refresh is None, "on change only"
    assert customers.policy.startswith("rebuild when missing")

    orders = statuses["stg_orders"]
    assert (orders.next_refresh, orders.next_refresh_kind) == ("2026-01-05T07:00:30+00:00", "ttl")
    assert orders.last_auto_run is None
    assert orders.backoff.failures == 0

    table = statuses["customer_orders"]
    assert (table.next_refresh, table.next_refresh_kind) == ("2026-01-05T06:00:00+00:00", "cron")
    assert table.last_materialization is None
    assert "stg_customers\n  policy: rebuild when missing" in as_table(statuses.values())


def test_status_command_prints_json_from_dagster_home(project_defs, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    # An instance folder has its dagster.yaml; without one, Dagster warns once per process on the
    # standard output, inside the JSON this test reads.
    (tmp_path / "dagster.yaml").write_text("")
    monkeypatch.setattr(cli, "load_project_defs", lambda root: project_defs)
    with dg.DagsterInstance.get() as instance:
        ticker = AnalyticsTicker(project_defs, instance, MONDAY_1AM)
        run = seed(ticker)
    result = CliRunner().invoke(cli.app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["asset"]: row for row in json.loads(result.output)}
    assert rows["stg_customers"]["last_auto_run"]["run_id"] == run.run_id
    assert rows["stg_customers"]["backoff"]["failures"] == 1
    assert rows["raw_orders"]["last_materialization"] == "2026-01-05T01:00:30+00:00"


def test_status_of_a_paused_asset_says_how_to_lift_the_pause(project_defs):
    policies = {"stg_customers": {"backoff": {"base": "1m", "max_failures": 1}}}
    defs = with_policies(project_defs, policies)
    with dg.instance_for_test() as instance:
        ticker = AnalyticsTicker(defs, instance, MONDAY_1AM)
        seed(ticker)
        statuses = automation_status(defs, instance, now=ticker.now)
    paused = next(status for status in statuses if status.asset == "stg_customers")
    to_resume = "materialize it successfully (a manual run will do) or change its code"
    assert asdict(paused.backoff) == {
        "failures": 1,
        "next_allowed": None,
        "paused": True,
        "to_resume": to_resume,
    }
    assert f"  backoff: PAUSED after 1 consecutive failures; to resume, {to_resume}\n" in as_table(
        statuses
    )
