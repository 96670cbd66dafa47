"""Lands 10,000 one-record files, and reports the arrivals sensor's cost: the time to land them, the
time of one tick over the folder, the cursor's size, and how much an hour of ticks adds to Dagster's
schedule storage.

    uv run python benchmarks/bench_landing_many.py                # 10,000 files, DuckDB
    uv run python benchmarks/bench_landing_many.py --files 1000   # a quick look

The sensor's decisions are `landing.look_for_arrivals`, the function the component's sensor calls
each tick; the landing is `landing.ingest` over the files the request's window covers, as the asset
runs it. An hour of ticks is 360 ticks (every 10 s) stored as the daemon stores them: one tick row
with its cursor each, in a SQLite instance, measured as the growth of `schedules.db`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus

from dagster_autopilot.pipelines import landing
from dagster_autopilot.samples.talent import CANDIDATE_SPEC
from dagster_autopilot.warehouse.connection import Warehouse

TICKS_PER_HOUR = 360


def write_files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for number in range(count):
        record = {
            "candidate_id": f"c{number:06d}",
            "full_name": f"Person {number}",
            "title": "Data Engineer",
            "skills": "python, sql",
        }
        (folder / f"candidate-{number:06d}.jsonl").write_text(json.dumps(record) + "\n")


def storage_growth_per_hour(workdir: Path, cursor: str) -> int:
    """Bytes `schedules.db` grows by when the daemon stores an hour of ticks with `cursor`."""
    home = workdir / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        database = home / "schedules" / "schedules.db"

        def size() -> int:
            return sum(p.stat().st_size for p in database.parent.glob("schedules.db*"))

        def tick(at: float) -> None:
            instance.create_tick(
                TickData(
                    instigator_origin_id="bench",
                    instigator_name="raw_candidates_arrivals",
                    instigator_type=InstigatorType.SENSOR,
                    status=TickStatus.SKIPPED,
                    timestamp=at,
                    skip_reason="no new settled files in candidates",
                    cursor=cursor,
                    selector_id="bench",
                )
            )

        tick(time.time())  # creates the tables
        before = size()
        for number in range(TICKS_PER_HOUR):
            tick(time.time() + number * 10)
        return size() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        folder = workdir / "landing"
        write_files(folder, args.files)
        os.environ["AUTOPILOT_DUCKDB_PATH"] = str(workdir / "warehouse.duckdb")
        os.environ.pop("DBT_TARGET", None)

        cursor = landing.ArrivalsCursor()
        started = time.perf_counter()
        # Ticks a little more than the file-clock margin apart; each request is landed as the
        # asset would land it, until every file has landed.
        warehouse, landed, requests, landing_seconds, tick_seconds = Warehouse.from_env(), 0, 0, 0.0, []
        while landed < args.files:
            tick_started = time.perf_counter()
            decision = landing.look_for_arrivals("raw_candidates", folder, cursor, now_ns=time.time_ns())
            tick_seconds.append(time.perf_counter() - tick_started)
            if decision.run_key:
                requests += 1
                landing_started = time.perf_counter()
                files = landing.settled_files(folder, decision.until_ns)
                report = landing.ingest(warehouse, "raw_candidates", CANDIDATE_SPEC, files)
                landing_seconds += time.perf_counter() - landing_started
                landed += len(report.files_ingested)
            else:
                time.sleep(landing.CLOCK_MARGIN_NS / 1e9 + 0.1)
        total_seconds = time.perf_counter() - started

        idle_started = time.perf_counter()
        idle = landing.look_for_arrivals("raw_candidates", folder, cursor, now_ns=time.time_ns())
        idle_tick_seconds = time.perf_counter() - idle_started
        assert idle.run_key is None, idle.reason
        cursor_text = cursor.dump()

        result = {
            "files": args.files,
            "files_landed": landed,
            "runs_requested": requests,
            "slowest_tick_seconds": round(max(tick_seconds), 2),
            "landing_seconds": round(landing_seconds, 2),
            "arrival_to_landed_seconds": round(total_seconds, 2),
            "idle_tick_seconds": round(idle_tick_seconds, 3),
            "cursor_bytes": len(cursor_text),
            "storage_growth_per_hour_bytes": storage_growth_per_hour(workdir, cursor_text),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
