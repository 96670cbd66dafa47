"""dbt steps fail at once, naming the file, when the DuckDB warehouse is damaged."""

import dagster as dg
import duckdb
from harness import copy_project, load_defs

from dagster_autopilot.warehouse.connection import DUCKDB_PATH_ENV


def test_a_truncated_warehouse_fails_the_dbt_step_naming_the_file(tmp_path, monkeypatch):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create table kept as select range as id from range(100000)")
    size = warehouse.stat().st_size
    with warehouse.open("r+b") as handle:
        handle.truncate(size // 2)
    monkeypatch.setenv(DUCKDB_PATH_ENV, str(warehouse))

    defs = load_defs(copy_project(tmp_path / "project"))
    dbt_assets = next(
        a
        for a in defs.assets
        if isinstance(a, dg.AssetsDefinition) and dg.AssetKey("raw_customers") in a.keys
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [dbt_assets], instance=instance, selection=["raw_customers"], raise_on_error=False
        )

    assert not result.success
    failures = [event.message or "" for event in result.all_events if event.is_step_failure]
    errors = [str(event.step_failure_data.error) for event in result.get_step_failure_events()]
    assert any(f"{warehouse} is not a valid DuckDB database" in e for e in errors), (failures, errors)
    assert not result.get_asset_materialization_events()
