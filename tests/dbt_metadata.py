"""Real dbt runs of a copy of the project, with two models added, and the metadata their
materializations carry: shared by the DuckDB test (`test_materialization_metadata.py`) and the
PostgreSQL one (`production/test_materialization_metadata_postgres.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from harness import copy_project, load_defs

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


def project_with_extra_models(destination: Path) -> Path:
    root = copy_project(destination)
    marts = root / "analytics_dbt" / "models" / "marts"
    (marts / "orders_star.sql").write_text(ORDERS_STAR)
    (marts / "orders_star.yml").write_text(ORDERS_STAR_SCHEMA)
    (marts / "customer_flags.sql").write_text(CUSTOMER_FLAGS)
    return root


@dataclass
class Built:
    instance: dg.DagsterInstance
    defs: dg.Definitions

    def materialize(self, keys, tags=None) -> dg.ExecuteInProcessResult:
        assets = [a for a in self.defs.assets if isinstance(a, dg.AssetsDefinition)]
        result = dg.materialize(
            assets,
            selection=[dg.AssetKey(key) for key in keys],
            resources=self.defs.resources,
            instance=self.instance,
            tags=tags,
            raise_on_error=False,
        )
        assert result.success, [e.message for e in result.all_events if e.is_step_failure]
        return result

    def metadata(self, key: str) -> dict:
        records = self.instance.fetch_materializations(dg.AssetKey(key), limit=1).records
        assert records, f"{key} was not materialized"
        return dict(records[0].asset_materialization.metadata)


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


def load(root: Path) -> dg.Definitions:
    return load_defs(root)
