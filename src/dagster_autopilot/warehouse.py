"""Where the warehouse lives: the one place that decides between DuckDB and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

DUCKDB_PATH_ENV = "AUTOPILOT_DUCKDB_PATH"


def use_project_warehouse_by_default(project_root: Path) -> Path:
    """Points DuckDB at `<project>/.data/warehouse.duckdb` unless `AUTOPILOT_DUCKDB_PATH` is set.

    The path must be absolute: dagster-dbt runs dbt inside a copy of the project, where a relative
    path would land in the copy and vanish with it. dbt reads it from the environment.
    """
    path = Path(os.environ.get(DUCKDB_PATH_ENV) or project_root / ".data" / "warehouse.duckdb")
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.environ[DUCKDB_PATH_ENV] = str(path)
    return path
