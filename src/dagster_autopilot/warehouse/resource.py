"""The warehouse as a Dagster resource: how asset bodies reach DuckDB or PostgreSQL.

Every component whose assets read or write the warehouse declares `WAREHOUSE_RESOURCE_KEY` with
`DEFAULT_WAREHOUSE` in its definitions, so a project gets the resource from its YAML alone. The
default reads the environment exactly as `Warehouse.from_env()` and dbt's profile do, so dbt
models and Python assets share one warehouse.

To point the Python assets elsewhere (a test, a one-off backfill), give the key another
`WarehouseResource`, e.g. `dg.materialize(assets, resources={"warehouse": WarehouseResource(
duckdb_path=...)})`. A password goes in as `dg.EnvVar("NAME")`: Dagster then keeps the variable's
name in the run config, never its value.
"""

import os

import dagster as dg
from pydantic import field_validator

from dagster_autopilot.warehouse.connection import (
    DUCKDB_PATH_ENV,
    DUCKDB_PATH_MISSING,
    TARGET_ENV,
    PostgresServer,
    Warehouse,
)

# Asset functions name their parameter after the key (`warehouse: WarehouseResource`): Dagster
# binds a resource parameter by its name.
WAREHOUSE_RESOURCE_KEY = "warehouse"

TARGETS = ("duckdb", "postgres")


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse the Python assets read and write. A field left unset is read from the
    environment when the asset runs, from the variable dbt's profile reads too."""

    target: str | None = None
    """`duckdb` or `postgres`; unset: `postgres` when `DBT_TARGET=postgres`, else `duckdb`."""

    duckdb_path: str | None = None
    """The DuckDB file; unset: `AUTOPILOT_DUCKDB_PATH`."""

    postgres_host: str | None = None
    """Unset: `POSTGRES_HOST`, else `localhost`."""

    postgres_port: int | None = None
    """Unset: `POSTGRES_PORT`, else 5432."""

    postgres_user: str | None = None
    """Unset: `POSTGRES_USER`."""

    postgres_password: str | None = None
    """Give it as `dg.EnvVar("NAME")`, never as text. Unset: `POSTGRES_PASSWORD`, else empty."""

    postgres_db: str | None = None
    """Unset: `POSTGRES_DB`."""

    postgres_schema: str | None = None
    """Unset: `POSTGRES_SCHEMA`, else `analytics`."""

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str | None) -> str | None:
        if value is not None and value not in TARGETS:
            raise ValueError(f"target: {value!r} is not one of {', '.join(TARGETS)}")
        return value

    def warehouse(self) -> Warehouse:
        """The `Warehouse` these fields and the environment describe."""
        target = self.target or ("postgres" if os.environ.get(TARGET_ENV) == "postgres" else "duckdb")
        if target == "postgres":
            return Warehouse(
                kind="postgres",
                schema=self.postgres_schema or os.environ.get("POSTGRES_SCHEMA", "analytics"),
                postgres=PostgresServer(
                    host=self.postgres_host,
                    port=self.postgres_port,
                    user=self.postgres_user,
                    password=self.postgres_password,
                    dbname=self.postgres_db,
                ),
            )
        path = self.duckdb_path or os.environ.get(DUCKDB_PATH_ENV)
        if not path:
            raise RuntimeError(DUCKDB_PATH_MISSING)
        return Warehouse(kind="duckdb", duckdb_path=path)


# One instance shared by every component: `dg.Definitions.merge` accepts a resource key declared
# by several definitions only when they hold the very same object.
DEFAULT_WAREHOUSE = WarehouseResource()
