"""The Python assets reach the warehouse through the `warehouse` resource, and only through it.

The default resource reads the same environment variables as `Warehouse.from_env()` and dbt; a
resource given explicitly decides where an asset writes, whatever the environment says.
"""

from pathlib import Path

import dagster as dg
import pytest

from dagster_autopilot.warehouse.connection import DUCKDB_PATH_ENV, Warehouse
from dagster_autopilot.warehouse.resource import (
    DEFAULT_WAREHOUSE,
    WAREHOUSE_RESOURCE_KEY,
    WarehouseResource,
)

# Every Python asset of the talent project: the landings, the embeddings and the matches.
TALENT_PYTHON_ASSETS = ("raw_candidates", "raw_jobs", "candidate_vectors", "job_vectors", "matches")

POSTGRES_ENV = {
    "DBT_TARGET": "postgres",
    "POSTGRES_HOST": "db.example",
    "POSTGRES_PORT": "6543",
    "POSTGRES_USER": "reader",
    "POSTGRES_PASSWORD": "from-the-environment",
    "POSTGRES_DB": "talent",
    "POSTGRES_SCHEMA": "marts",
}


def table_rows(path: Path, table: str) -> int:
    warehouse = Warehouse(kind="duckdb", duckdb_path=str(path))
    with warehouse.connect() as session:
        return session.fetch_all(f"select count(*) from {table}")[0][0]


@pytest.mark.parametrize("key", TALENT_PYTHON_ASSETS)
def test_each_python_asset_requires_the_warehouse_resource(project_defs: dg.Definitions, key: str):
    assert WAREHOUSE_RESOURCE_KEY in project_defs.get_assets_def(key).required_resource_keys


def test_the_components_share_one_default_resource(project_defs: dg.Definitions):
    # Five components declare the key; the merge keeps one object, the default.
    assert project_defs.resources[WAREHOUSE_RESOURCE_KEY] is DEFAULT_WAREHOUSE


def test_a_landing_writes_to_the_warehouse_its_resource_names(
    project_defs: dg.Definitions, tmp_path: Path, _warehouse: Path
):
    elsewhere = tmp_path / "named_by_the_resource.duckdb"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [project_defs.get_assets_def("raw_candidates")],
            resources={WAREHOUSE_RESOURCE_KEY: WarehouseResource(duckdb_path=str(elsewhere))},
            instance=instance,
        )
    assert result.success
    kept = result.get_asset_materialization_events()[0].materialization.metadata["records_kept"]
    assert kept.value > 0, "the shipped sample lands with the first run"
    assert table_rows(elsewhere, "raw_candidates") == kept.value
    assert not _warehouse.exists(), f"{DUCKDB_PATH_ENV}'s file is not touched"


def test_the_default_resource_reads_the_variables_from_env_reads(
    monkeypatch: pytest.MonkeyPatch, _warehouse: Path
):
    assert DEFAULT_WAREHOUSE.warehouse() == Warehouse.from_env()
    assert DEFAULT_WAREHOUSE.warehouse().duckdb_path == str(_warehouse)

    for name, value in POSTGRES_ENV.items():
        monkeypatch.setenv(name, value)
    postgres = DEFAULT_WAREHOUSE.warehouse()
    assert postgres == Warehouse.from_env()
    assert (postgres.kind, postgres.schema) == ("postgres", "marts")
    assert postgres.postgres.connect_kwargs() == {
        "host": "db.example",
        "port": 6543,
        "user": "reader",
        "password": "from-the-environment",
        "dbname": "talent",
    }
    assert postgres.describe() == "postgresql://db.example:6543/talent schema marts"


def test_fields_set_on_the_resource_win_over_the_environment(monkeypatch: pytest.MonkeyPatch):
    for name, value in POSTGRES_ENV.items():
        monkeypatch.setenv(name, value)
    resource = WarehouseResource(postgres_host="other.example", postgres_schema="staging")
    warehouse = resource.warehouse()
    assert warehouse.schema == "staging"
    assert warehouse.postgres.connect_kwargs()["host"] == "other.example"
    assert warehouse.postgres.connect_kwargs()["user"] == "reader", "unset fields read the env"

    duckdb = WarehouseResource(target="duckdb", duckdb_path="/elsewhere.duckdb").warehouse()
    assert (duckdb.kind, duckdb.duckdb_path) == ("duckdb", "/elsewhere.duckdb")


def test_without_a_path_the_error_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(DUCKDB_PATH_ENV)
    monkeypatch.delenv("DBT_TARGET", raising=False)
    with pytest.raises(RuntimeError, match=DUCKDB_PATH_ENV):
        DEFAULT_WAREHOUSE.warehouse()


def test_an_unknown_target_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="target: 'sqlite'"):
        WarehouseResource(target="sqlite")


def test_a_password_given_as_an_env_var_is_read_at_run_time_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("WAREHOUSE_TEST_SECRET", "s3cret-value")
    resource = WarehouseResource(
        target="postgres",
        postgres_user="reader",
        postgres_db="talent",
        postgres_password=dg.EnvVar("WAREHOUSE_TEST_SECRET"),
    )

    @dg.asset
    def password_seen(warehouse: WarehouseResource) -> str:
        connection = warehouse.warehouse()
        assert "s3cret-value" not in repr(connection)
        return connection.postgres.connect_kwargs()["password"]

    result = dg.materialize([password_seen], resources={WAREHOUSE_RESOURCE_KEY: resource})
    assert result.output_for_node("password_seen") == "s3cret-value"
    assert "s3cret-value" not in repr(resource)
