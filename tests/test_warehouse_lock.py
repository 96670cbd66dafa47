"""Steps wait for DuckDB's write lock while another process holds it, rather than fail.

DuckDB lets one process write a file at a time; a landing run commits in chunks and gives the lock
up between them, so the Python steps and dbt of other runs must wait their turn. Each test holds
the lock from another process, and starts its step only once that process says it holds it.
"""

import subprocess
import sys

import dagster as dg
from harness import copy_project, load_defs

from dagster_autopilot.warehouse.connection import DUCKDB_PATH_ENV, Warehouse


def _hold_the_lock(path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            "connection = duckdb.connect(sys.argv[1])\n"
            "connection.execute('create table if not exists held as select 1 as one')\n"
            "print('locked', flush=True)\n"
            f"time.sleep({seconds})\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_python_step_s_connection_waits_for_the_lock(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv(DUCKDB_PATH_ENV, str(path))
    holder = _hold_the_lock(path, seconds=5)
    try:
        assert holder.poll() is None, "the lock is held when the step connects"
        with Warehouse.from_env().connect() as session:
            assert session.fetch_all("select one from held") == [(1,)]
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0


def test_a_dbt_step_waits_for_the_lock(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv(DUCKDB_PATH_ENV, str(path))
    defs = load_defs(copy_project(tmp_path / "project"))
    dbt_assets = next(
        a
        for a in defs.assets
        if isinstance(a, dg.AssetsDefinition) and dg.AssetKey("raw_customers") in a.keys
    )
    # Held past dbt's start-up, within its connection retries (1 + 2 + 4 + 8 s, profiles.yml).
    holder = _hold_the_lock(path, seconds=10)
    try:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [dbt_assets], instance=instance, selection=["raw_customers"], raise_on_error=False
            )
    finally:
        holder.wait(timeout=60)
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    materialized = [e.asset_key for e in result.get_asset_materialization_events()]
    assert materialized == [dg.AssetKey("raw_customers")]
