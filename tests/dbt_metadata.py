"""Real dbt runs of a copy of the project, with three models added, and the metadata their
materializations carry: shared by the DuckDB tests (`test_materialization_metadata.py`) and
their PostgreSQL run (`production/test_materialization_metadata_postgres.py`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from harness import copy_project, load_defs

from dagster_autopilot.automation.audit import REASON_TAG, REASONS_BY_ASSET_TAG, TRIGGER_TAG

# A `select *` model, with one of its columns documented and the others not.
ORDERS_STAR = "select * from {{ ref('stg_orders') }}\n"
ORDERS_STAR_SCHEMA = """version: 2

models:
  - name: orders_star
    description: Every order, as stg_orders has it.
    columns:
      - name: order_id
        description: The order's id.
"""
# A table with a column that no schema.yml documents.
CUSTOMER_FLAGS = """select
    customer_id,
    lifetime_value,
    lifetime_value >= 1000 as is_big_spender
from {{ ref('customer_orders') }}
"""
# A table whose build fails: it reads a relation that does not exist.
BROKEN = "select * from no_such_table\n"

BUILT = (
    "raw_orders",
    "raw_customers",
    "stg_orders",
    "stg_customers",
    "customer_orders",
    "customer_segments",
    "daily_revenue",
    "orders_star",
    "customer_flags",
)
CRON_RUN_TAGS = {
    TRIGGER_TAG: "auto-materialize",
    REASON_TAG: "cron",
    REASONS_BY_ASSET_TAG: json.dumps({"daily_revenue": ["cron"]}),
}

# Each target's names for the types of the tests' columns, as its dbt adapter reports them.
TYPES = {
    "duckdb": {
        "integer": "INTEGER",
        "bigint": "BIGINT",
        "boolean": "BOOLEAN",
        "date": "DATE",
        "text": "character varying(256)",
        "amount": "DECIMAL(16,2)",  # numeric(16,2) in the seed
        "sum": "DECIMAL(38,2)",  # a sum of amounts
    },
    "postgres": {
        "integer": "integer",
        "bigint": "bigint",
        "boolean": "boolean",
        "date": "date",
        "text": "text",
        "amount": "numeric(16,2)",
        "sum": "numeric",
    },
}


def project_with_extra_models(destination: Path) -> Path:
    root = copy_project(destination)
    marts = root / "analytics_dbt" / "models" / "marts"
    (marts / "orders_star.sql").write_text(ORDERS_STAR)
    (marts / "orders_star.yml").write_text(ORDERS_STAR_SCHEMA)
    (marts / "customer_flags.sql").write_text(CUSTOMER_FLAGS)
    (marts / "broken.sql").write_text(BROKEN)
    return root


@dataclass
class Built:
    instance: dg.DagsterInstance
    defs: dg.Definitions
    target: str
    first_daily_revenue: dict = field(default_factory=dict)
    incremental_run: dg.ExecuteInProcessResult | None = None

    @property
    def types(self) -> dict[str, str]:
        return TYPES[self.target]

    def materialize(self, keys, tags=None, expect_success=True) -> dg.ExecuteInProcessResult:
        assets = [a for a in self.defs.assets if isinstance(a, dg.AssetsDefinition)]
        result = dg.materialize(
            assets,
            selection=[dg.AssetKey(key) for key in keys],
            resources=self.defs.resources,
            instance=self.instance,
            tags=tags,
            raise_on_error=False,
        )
        if expect_success:
            assert result.success, [e.message for e in result.all_events if e.is_step_failure]
        return result

    def metadata(self, key: str) -> dict:
        records = self.instance.fetch_materializations(dg.AssetKey(key), limit=1).records
        assert records, f"{key} was not materialized"
        return dict(records[0].asset_materialization.metadata)


@contextmanager
def built_project(tmp: Path, target: str, env: Mapping[str, str]) -> Iterator[Built]:
    """The project with `orders_star`, `customer_flags` and `broken` added, built once by hand
    with the warehouse of `env`; then the incremental `daily_revenue` again as an automation run
    for its cron (an incremental run), beside `broken`, whose build fails that run."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        defs = load_defs(project_with_extra_models(tmp / "project"))
        with dg.instance_for_test() as instance:
            built = Built(instance, defs, target)
            built.materialize(BUILT)
            built.first_daily_revenue = built.metadata("daily_revenue")
            built.incremental_run = built.materialize(
                ["daily_revenue", "broken"], tags=CRON_RUN_TAGS, expect_success=False
            )
            yield built


def columns(metadata: dict) -> dict[str, str]:
    """name -> type of the materialization's `dagster/column_schema`."""
    schema = metadata["dagster/column_schema"].value
    return {column.name: column.type for column in schema.columns}


def descriptions(metadata: dict) -> dict[str, str | None]:
    schema = metadata["dagster/column_schema"].value
    return {column.name: column.description for column in schema.columns}


def lineage(metadata: dict) -> dict[str, set[tuple[str, str]]]:
    """column -> {(parent asset, parent column)} of the materialization's column lineage."""
    value = metadata["dagster/column_lineage"].value
    return {
        column: {(dep.asset_key.to_user_string(), dep.column_name) for dep in deps}
        for column, deps in value.deps_by_column.items()
    }
