"""Editing dbt files requests exactly the models whose logic changed, and never loses a change."""

import datetime
from pathlib import Path

import dagster as dg
import pytest
from harness import (
    MONDAY_1AM,
    SEEDS,
    VIEWS,
    AnalyticsTicker,
    copy_project,
    finish_run,
    load_defs,
    run_at_clock,
)

MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def editable(tmp_path: Path):
    """A private copy of the project, with seeds and views built, and a ticker over its analytics
    assets (the talent pipeline has tests of its own)."""
    root = copy_project(tmp_path / "project")
    with dg.instance_for_test() as instance:
        ticker = AnalyticsTicker(load_defs(root), instance, MONDAY_1AM)
        ticker.simulate_run(ticker.tick())
        assert ticker.tick() == set()
        yield root, ticker


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_edits_request_exactly_the_models_whose_logic_changed(editable):
    root, ticker = editable
    staging = root / "analytics_dbt" / "models" / "staging"

    # A comment and reflowed whitespace change no logic.
    edit(staging / "stg_orders.sql", "select * from final", "-- tidy\nselect *\n    from final")
    ticker.reload(root)
    assert ticker.tick() == set()

    # A new column is new logic, for that model only.
    edit(staging / "stg_customers.sql", "as full_name,", "as full_name,\n        1 as loyalty_tier,")
    ticker.reload(root)
    assert ticker.tick() == {"stg_customers"}
    ticker.simulate_run({"stg_customers"})
    assert ticker.tick() == set()

    # A macro edit reaches every model that uses it, through adapter.dispatch too.
    edit(root / "analytics_dbt" / "macros" / "cents_to_dollars.sql", "100.0", "100.00")
    ticker.reload(root)
    assert ticker.tick() == {"stg_orders"}


def test_a_code_change_survives_a_failed_run(editable):
    root, ticker = editable
    edit(
        root / "analytics_dbt" / "models" / "staging" / "stg_orders.sql",
        "order_date,",
        "order_date, 2 as v,",
    )
    ticker.reload(root)
    assert ticker.tick() == {"stg_orders"}
    assert not run_at_clock(ticker, {"stg_orders"}, fail=True).success
    assert ticker.tick() == set(), "backing off for 5 minutes after the failure"
    assert ticker.tick(5 * MINUTE) == {"stg_orders"}, "the change is not lost with the failed run"
    run_at_clock(ticker, {"stg_orders"})
    assert ticker.tick() == set()


def test_a_csv_edit_requests_its_seed(editable):
    root, ticker = editable
    csv = root / "analytics_dbt" / "seeds" / "raw_customers.csv"
    csv.write_text(csv.read_text().rstrip("\n") + "\n")  # same rows, maybe new bytes
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines[:-1], lines[-1].replace("@", "+new@", 1)]) + "\n")
    ticker.reload(root)
    # Its view goes in the same run, since the seed is requested on this tick.
    assert ticker.tick() == {"raw_customers", "stg_customers"}


def test_literal_code_versions_count_comments(editable):
    root, ticker = editable
    edit(
        root / "defs" / "analytics" / "defs.yaml",
        "  policies:",
        "  code_versions: literal\n  policies:",
    )
    ticker.reload(root)
    ticker.tick()  # the switch itself changes every version once
    ticker.simulate_run(SEEDS | VIEWS)
    assert ticker.tick() == set()
    edit(
        root / "analytics_dbt" / "models" / "staging" / "stg_orders.sql",
        "select * from final",
        "-- hi\nselect * from final",
    )
    ticker.reload(root)
    assert ticker.tick() == {"stg_orders"}


def code_version_of(ticker, key: str) -> str:
    return ticker.defs.resolve_asset_graph().get(dg.AssetKey(key)).code_version


@pytest.mark.parametrize("stamped_with", ["old", "new"])
def test_a_run_started_before_a_deploy_does_not_consume_the_change(editable, stamped_with):
    # dagster#33708: a run that started under the old code and finishes after the deploy may be
    # stamped with the new code version; either way it did not run the new SQL.
    root, ticker = editable
    old_version = code_version_of(ticker, "stg_orders")
    running = ticker.start_run({"stg_orders"})
    assert ticker.tick() == set()
    edit(
        root / "analytics_dbt" / "models" / "staging" / "stg_orders.sql",
        "order_date,",
        "order_date, 2 as v,",
    )
    ticker.reload(root)
    new_version = code_version_of(ticker, "stg_orders")
    assert new_version != old_version
    assert ticker.tick() == set(), "its run is in progress"
    finish_run(ticker, running, "stg_orders", new_version if stamped_with == "new" else old_version)
    assert ticker.tick() == {"stg_orders"}, "the finished run ran the old SQL"
    ticker.simulate_run({"stg_orders"})  # a run that started after the change
    assert [ticker.tick() for _ in range(3)] == [set()] * 3
