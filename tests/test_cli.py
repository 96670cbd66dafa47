"""The `dg` command line works in this environment: commands listed, components registered."""

import os
import shutil
import subprocess
from pathlib import Path

from harness import REPO_ROOT, copy_project

DG = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin" / "dg"


def _dg(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [str(DG), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_dg_help_lists_its_commands():
    result = _dg("--help")
    assert result.returncode == 0, result.stderr
    for command in ("check", "dev", "list", "scaffold"):
        assert f" {command} " in result.stdout, result.stdout


def test_components_are_registered_with_their_docstrings():
    result = _dg("list", "components")
    assert result.returncode == 0, result.stderr
    assert "dagster_autopilot.CustomDbtComponent" in result.stdout
    assert "dagster_autopilot.SafeScheduledJobComponent" in result.stdout
    assert "refresh themselves" in result.stdout


def test_scaffolded_dbt_component_loads(tmp_path):
    # A project that does not declare the dbt project yet: scaffold it, then `dg check defs`.
    root = copy_project(tmp_path / "project")
    shutil.rmtree(root / "defs" / "analytics")
    env = {"PYTHONPATH": str(root / "src"), "AUTOPILOT_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    result = _dg(
        "scaffold",
        "defs",
        "dagster_autopilot.CustomDbtComponent",
        "more_analytics",
        "--project-path",
        "analytics_dbt",
        cwd=root,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    scaffolded = root / "defs" / "more_analytics" / "defs.yaml"
    assert "type: dagster_autopilot.CustomDbtComponent" in scaffolded.read_text()
    checked = _dg("check", "defs", cwd=root, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
