"""Standard `dg` commands work on a fresh clone, with nothing but the project's embedded defaults."""

import os
import subprocess
from pathlib import Path

from harness import REPO_ROOT, copy_project

from dagster_autopilot.warehouse.connection import DUCKDB_PATH_ENV


def test_refresh_defs_state_works_without_a_warehouse_variable(tmp_path):
    root = copy_project(tmp_path / "project")
    dg = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin" / "dg"
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(root / "src")}
    env.pop(DUCKDB_PATH_ENV, None)
    env.pop("DAGSTER_IS_DEV_CLI", None)
    result = subprocess.run(
        [str(dg), "utils", "refresh-defs-state"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Env var required but not provided" not in output, output
    # The dbt project was parsed into the copy's own state, against the copy's default warehouse.
    assert list((root / "defs").rglob("manifest.json")), output
