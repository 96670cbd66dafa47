"""Lands one big CSV (200 MB, 562,000 rows by default) into a fresh warehouse, and reports the time,
the peak RSS of the landing process, and the longest stretch the DuckDB write lock was held.

    uv run python benchmarks/bench_landing_big.py                 # 562,000 rows, DuckDB
    uv run python benchmarks/bench_landing_big.py --rows 50000    # a quick look
    uv run python benchmarks/bench_landing_big.py --postgres      # POSTGRES_* and DBT_TARGET set

The landing runs in a child process, so its peak RSS is its own. Meanwhile this process tries to
open the DuckDB file read-only every 50 ms: a failed try means a writer holds the lock, and the
longest run of failed tries is the longest time another step would have waited.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from dagster_autopilot.samples.talent import CANDIDATE_SPEC, generate

# Each record's text is padded to this many characters, so 562,000 rows make about 200 MB.
SUMMARY_CHARS = 240


def write_big_csv(path: Path, rows: int) -> None:
    templates, _ = generate(2_000, 0, seed=21)
    columns = list(CANDIDATE_SPEC.columns)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for number in range(rows):
            record = dict(templates[number % len(templates)])
            record["candidate_id"] = f"big-{number:07d}"
            record["summary"] = (record["summary"] * 4)[:SUMMARY_CHARS]
            writer.writerow([record[name] for name in columns])


def land_in_child(csv_path: Path) -> dict:
    """Runs in the child: lands the file and prints what it did as JSON."""
    from dagster_autopilot.pipelines import landing
    from dagster_autopilot.warehouse.connection import Warehouse

    started = time.perf_counter()
    report = landing.ingest(Warehouse.from_env(), "raw_candidates", CANDIDATE_SPEC, [csv_path])
    return {
        "seconds": time.perf_counter() - started,
        "records_in": report.records_in,
        "records_new": report.records_new,
        "records_quarantined": report.records_quarantined,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def longest_lock_stretch(process: subprocess.Popen, database: Path) -> float:
    """Seconds of the longest run of failed read-only opens while `process` runs."""
    longest, blocked_since = 0.0, None
    while process.poll() is None:
        now = time.monotonic()
        try:
            duckdb.connect(str(database), read_only=True).close()
            if blocked_since is not None:
                longest = max(longest, now - blocked_since)
            blocked_since = None
        except duckdb.Error:
            if blocked_since is None:
                blocked_since = now
        time.sleep(0.05)
    if blocked_since is not None:
        longest = max(longest, time.monotonic() - blocked_since)
    return longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=562_000)
    parser.add_argument("--postgres", action="store_true", help="land into DBT_TARGET=postgres")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(land_in_child(args.child)))
        return

    with tempfile.TemporaryDirectory() as workdir:
        csv_path = Path(workdir) / "big.csv"
        write_big_csv(csv_path, args.rows)
        database = Path(workdir) / "warehouse.duckdb"
        env = {**os.environ, "AUTOPILOT_DUCKDB_PATH": str(database)}
        if not args.postgres:
            env.pop("DBT_TARGET", None)
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", str(csv_path)], env=env, stdout=subprocess.PIPE
        )
        stretch = None if args.postgres else longest_lock_stretch(process, database)
        output, _ = process.communicate()
        if process.returncode:
            raise SystemExit(f"the landing failed (exit {process.returncode})")
        result = json.loads(output)
        result["file_mb"] = round(csv_path.stat().st_size / 1e6, 1)
        result["rows"] = args.rows
        result["warehouse"] = "postgres" if args.postgres else "duckdb"
        result["longest_lock_stretch_seconds"] = stretch
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
