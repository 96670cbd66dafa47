"""Every seed and model builds with dbt on PostgreSQL, through the project's real definitions, and
every dbt test passes as an asset check: the `postgres` target is the production warehouse."""

import dagster as dg
import pytest
from harness import ANALYTICS_ASSETS


def test_all_assets_materialize_and_checks_pass_on_postgres(
    project_defs: dg.Definitions, fresh_database, monkeypatch: pytest.MonkeyPatch
):
    warehouse = fresh_database("warehouse")
    for name, value in warehouse.dbt_env(schema="analytics").items():
        monkeypatch.setenv(name, value)

    assets = [a for a in project_defs.assets if isinstance(a, dg.AssetsDefinition)]
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, instance=instance, raise_on_error=False)
    assert result.success, [
        event.message for event in result.all_events if event.is_failure or event.is_step_failure
    ]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == ANALYTICS_ASSETS
    checks = result.get_asset_check_evaluations()
    declared = {key for definition in assets for key in definition.check_keys}
    assert len(declared) > 20, "the dbt tests surface as asset checks"
    assert {c.asset_check_key for c in checks} == declared
    assert [c.check_name for c in checks if not c.passed] == []

    # The data is in PostgreSQL, in the configured schema, with the right kind of relation.
    connection = warehouse.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("select count(*) from analytics.customer_orders")
            assert cursor.fetchone() == (200,)
            cursor.execute(
                "select table_name, table_type from information_schema.tables"
                " where table_schema = 'analytics'"
            )
            relations = dict(cursor.fetchall())
    finally:
        connection.close()
    assert relations == {
        "raw_customers": "BASE TABLE",
        "raw_orders": "BASE TABLE",
        "stg_customers": "VIEW",
        "stg_orders": "VIEW",
        "customer_orders": "BASE TABLE",
        "order_summary": "BASE TABLE",
        "customer_segments": "BASE TABLE",
        "daily_revenue": "BASE TABLE",
    }
