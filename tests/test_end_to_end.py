"""Every asset builds for real with dbt on DuckDB, and every dbt test passes as an asset check."""

import dagster as dg
import duckdb
from harness import build_everything_with_dbt


def test_all_assets_materialize_and_checks_pass(project_defs: dg.Definitions, _warehouse):
    build_everything_with_dbt(project_defs)
    with duckdb.connect(str(_warehouse), read_only=True) as connection:
        (customers,) = connection.execute("select count(*) from customer_orders").fetchone()
    assert customers == 200
