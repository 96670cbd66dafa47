"""What a dbt materialization shows in the UI, from real dbt runs on DuckDB: the warehouse's
columns and types (undocumented ones included), the row count, the column lineage of the
project's own analysis, and why the automation requested it. The tests that read the warehouse
run on PostgreSQL too (`production/test_materialization_metadata_postgres.py`)."""

import datetime

import dagster as dg
import duckdb
import pytest
from dbt_metadata import built_project, columns, descriptions, lineage

from dagster_autopilot.automation.audit import TRIGGER_TAG
from dagster_autopilot.automation.run_explain import EXPLAIN_METADATA
from dagster_autopilot.dbt.materialization_metadata import LINEAGE_TABLE_METADATA


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("metadata")
    warehouse = tmp / "warehouse.duckdb"
    with built_project(tmp, "duckdb", {"AUTOPILOT_DUCKDB_PATH": str(warehouse)}) as state:
        state.warehouse = warehouse
        yield state


def stg_orders_types(types: dict[str, str]) -> dict[str, str]:
    return {
        "order_id": types["integer"],
        "customer_id": types["integer"],
        "order_date": types["date"],
        "status": types["text"],
        "amount": types["amount"],
    }


def test_columns_and_types_come_from_the_warehouse(built):
    types = built.types
    metadata = built.metadata("customer_orders")
    assert columns(metadata) == {
        "customer_id": types["integer"],
        "full_name": types["text"],
        "email": types["text"],
        "country": types["text"],
        "signup_date": types["date"],
        "first_order_date": types["date"],
        "most_recent_order_date": types["date"],
        "number_of_orders": types["bigint"],
        "lifetime_value": types["sum"],
    }
    assert descriptions(metadata)["lifetime_value"] == (
        "Sum of the customer's order amounts in dollars, excluding returned orders."
    )
    assert metadata["dagster/row_count"].value == 200


def test_an_undocumented_column_is_shown_with_its_type(built):
    types = built.types
    metadata = built.metadata("customer_flags")
    assert columns(metadata) == {
        "customer_id": types["integer"],
        "lifetime_value": types["sum"],
        "is_big_spender": types["boolean"],
    }
    assert metadata["dagster/row_count"].value == 200
    assert lineage(metadata) == {
        "customer_id": {("customer_orders", "customer_id")},
        "lifetime_value": {("customer_orders", "lifetime_value")},
        "is_big_spender": {("customer_orders", "lifetime_value")},
    }


def test_a_select_star_model_has_its_parents_columns_and_lineage(built):
    metadata = built.metadata("orders_star")
    expected = stg_orders_types(built.types)
    assert columns(metadata) == expected
    assert descriptions(metadata) == {
        "order_id": "The order's id.",
        "customer_id": None,
        "order_date": None,
        "status": None,
        "amount": None,
    }
    assert metadata["dagster/row_count"].value == 500
    assert lineage(metadata) == {name: {("stg_orders", name)} for name in expected}


def test_an_incremental_model_on_its_first_and_incremental_runs(built):
    types = built.types
    expected_columns = {
        "order_date": types["date"],
        "number_of_orders": types["bigint"],
        "gross_revenue": types["sum"],
        "net_revenue": types["sum"],
    }
    expected_lineage = {
        "order_date": {("stg_orders", "order_date")},
        "number_of_orders": {("stg_orders", "order_id")},
        "gross_revenue": {("stg_orders", "amount")},
        "net_revenue": {("stg_orders", "amount"), ("stg_orders", "status")},
    }
    for metadata in (built.first_daily_revenue, built.metadata("daily_revenue")):
        assert columns(metadata) == expected_columns
        assert metadata["dagster/row_count"].value == 310
        assert lineage(metadata) == expected_lineage


def test_a_run_whose_dbt_command_fails_records_what_it_built_with_its_metadata(built):
    run = built.incremental_run
    assert not run.success, "broken's build fails the run"
    (materialization,) = run.get_asset_materialization_events()
    metadata = materialization.step_materialization_data.materialization.metadata
    assert materialization.asset_key == dg.AssetKey("daily_revenue")
    assert metadata["dagster/row_count"].value == 310
    assert set(columns(metadata)) == {"order_date", "number_of_orders", "gross_revenue", "net_revenue"}


def test_lineage_runs_through_the_marts_to_the_view(built):
    assert lineage(built.metadata("customer_segments"))["lifetime_value"] == {
        ("customer_orders", "lifetime_value")
    }
    assert lineage(built.metadata("customer_orders"))["lifetime_value"] == {
        ("stg_orders", "amount"),
        ("stg_orders", "status"),
    }


def test_the_lineage_table_traces_each_column_back_through_the_ancestors(built):
    table = built.metadata("customer_segments")[LINEAGE_TABLE_METADATA].value
    assert (
        "| `lifetime_value` | customer_orders.lifetime_value | stg_orders.amount, "
        "stg_orders.status; raw_orders.amount, raw_orders.status |"
    ) in table.splitlines()
    assert table.splitlines()[0] == "| Column | Computed from | Traced back to |"
    assert len(table.splitlines()) == 2 + 5, "one row per column of customer_segments"


def test_a_view_has_columns_and_lineage_but_no_row_count(built):
    metadata = built.metadata("stg_orders")
    assert columns(metadata) == stg_orders_types(built.types)
    assert "dagster/row_count" not in metadata, "counting a view's rows runs its query"
    assert lineage(metadata)["order_id"] == {("raw_orders", "id")}


def test_an_automation_run_says_why_it_was_requested(built):
    (run,) = built.instance.get_run_records(
        dg.RunsFilter(tags={TRIGGER_TAG: "auto-materialize"}), limit=1
    )
    created = run.create_timestamp.astimezone(datetime.UTC)
    # The latest 06:00 UTC at or before the run was created: the tick the sentence names.
    tick = created.replace(hour=6, minute=0, second=0, microsecond=0)
    if tick > created:
        tick -= datetime.timedelta(days=1)
    assert built.metadata("daily_revenue")[EXPLAIN_METADATA].value == (
        f"daily_revenue was requested by the automation because its cron tick at "
        f"{tick.isoformat()} passed."
    )
    assert EXPLAIN_METADATA not in built.first_daily_revenue, "a run by hand has no reason"


def test_the_warehouse_is_free_after_the_dbt_step(built):
    # dbt-duckdb keeps the file open in the process that fetched the metadata; a Python step of
    # an in-process run opens it read-write with another configuration.
    with duckdb.connect(str(built.warehouse)) as connection:
        assert connection.execute("select count(*) from customer_orders").fetchone() == (200,)
