"""What a dbt materialization shows in the UI, from real dbt runs on the PostgreSQL target: the
warehouse's columns and types (undocumented ones included), the row count and the column lineage
of the project's own analysis. The DuckDB side is `tests/test_materialization_metadata.py`."""

import dagster as dg
import pytest
from dbt_metadata import BUILT, Built, columns, descriptions, lineage, load, project_with_extra_models

STG_ORDERS_TYPES = {
    "order_id": "integer",
    "customer_id": "integer",
    "order_date": "date",
    "status": "text",
    "amount": "numeric(16,2)",
}


@pytest.fixture(scope="module")
def built(fresh_database, tmp_path_factory: pytest.TempPathFactory):
    """The project with `orders_star` and `customer_flags` added, built on a fresh PostgreSQL
    warehouse, then the incremental `daily_revenue` again (an incremental run)."""
    warehouse = fresh_database("metadata")
    tmp = tmp_path_factory.mktemp("metadata_pg")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in warehouse.dbt_env(schema="analytics").items():
            patch.setenv(name, value)
        defs = load(project_with_extra_models(tmp / "project"))
        with dg.instance_for_test() as instance:
            state = Built(instance, defs)
            state.materialize(BUILT)
            state.first_daily_revenue = state.metadata("daily_revenue")
            state.materialize(["daily_revenue"])
            yield state


def test_columns_and_types_come_from_the_warehouse(built):
    metadata = built.metadata("customer_orders")
    assert columns(metadata) == {
        "customer_id": "integer",
        "full_name": "text",
        "email": "text",
        "country": "text",
        "signup_date": "date",
        "first_order_date": "date",
        "most_recent_order_date": "date",
        "number_of_orders": "bigint",
        "lifetime_value": "numeric",
    }
    assert descriptions(metadata)["lifetime_value"] == (
        "Sum of the customer's order amounts in dollars, excluding returned orders."
    )
    assert metadata["dagster/row_count"].value == 200


def test_an_undocumented_column_is_shown_with_its_type(built):
    metadata = built.metadata("customer_flags")
    assert columns(metadata) == {
        "customer_id": "integer",
        "lifetime_value": "numeric",
        "is_big_spender": "boolean",
    }
    assert metadata["dagster/row_count"].value == 200
    assert lineage(metadata)["is_big_spender"] == {("customer_orders", "lifetime_value")}


def test_a_select_star_model_has_its_parents_columns_and_lineage(built):
    metadata = built.metadata("orders_star")
    assert columns(metadata) == STG_ORDERS_TYPES
    assert descriptions(metadata)["order_id"] == "The order's id."
    assert metadata["dagster/row_count"].value == 500
    assert lineage(metadata) == {name: {("stg_orders", name)} for name in STG_ORDERS_TYPES}


def test_an_incremental_model_on_its_first_and_incremental_runs(built):
    for metadata in (built.first_daily_revenue, built.metadata("daily_revenue")):
        assert columns(metadata) == {
            "order_date": "date",
            "number_of_orders": "bigint",
            "gross_revenue": "numeric",
            "net_revenue": "numeric",
        }
        assert metadata["dagster/row_count"].value == 310
        assert lineage(metadata)["net_revenue"] == {("stg_orders", "amount"), ("stg_orders", "status")}


def test_a_view_has_columns_and_lineage_but_no_row_count(built):
    metadata = built.metadata("stg_orders")
    assert columns(metadata) == STG_ORDERS_TYPES
    assert "dagster/row_count" not in metadata
    assert lineage(metadata)["order_id"] == {("raw_orders", "id")}
