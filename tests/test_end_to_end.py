"""Every asset builds for real with dbt on DuckDB, and every dbt test passes as an asset check."""

import dagster as dg
import duckdb
from harness import ANALYTICS_ASSETS


def test_all_assets_materialize_and_checks_pass(project_defs: dg.Definitions, _warehouse):
    assets = [a for a in project_defs.assets if isinstance(a, dg.AssetsDefinition)]
    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, instance=instance)
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == ANALYTICS_ASSETS
    checks = result.get_asset_check_evaluations()
    declared = {key for definition in assets for key in definition.check_keys}
    assert len(declared) > 20, "the dbt tests surface as asset checks"
    assert {c.asset_check_key for c in checks} == declared
    assert [c.check_name for c in checks if not c.passed] == []
    with duckdb.connect(str(_warehouse), read_only=True) as connection:
        (customers,) = connection.execute("select count(*) from customer_orders").fetchone()
    assert customers == 200
