"""The `dg dev` edit loop: seconds from saving a model's SQL to the automation's request for it.

    uv run python benchmarks/bench_edit_loop.py [--repeats 3] [--port 3137]

Starts `dg dev` on a copy of this project (a temporary DAGSTER_HOME and DuckDB file), waits until
the automation sensor has built the missing seeds and views, then, for each repeat, adds a column to
`stg_customers.sql` and times the save until the sensor requests a run that builds `stg_customers`
(the run's creation), and until that run starts. Nobody clicks "Reload definitions": the dbt
project watcher does it.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ("dg.toml", "pyproject.toml", "uv.lock", "defs", "analytics_dbt", "src")
IGNORED = shutil.ignore_patterns(".local_defs_state", "target", "logs", "__pycache__", "*.duckdb")
RUNS = """query($after: Float) { runsOrError(filter: {createdAfter: $after}) {
  ... on Runs { results { runId status creationTime startTime assetSelection { path } } } } }"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def wait_for(what: str, check, timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def runs_of(port: int, key: str, after: float, started: bool) -> list[dict]:
    results = graphql(port, RUNS, {"after": after})["runsOrError"]["results"]
    return [
        run
        for run in results
        if [key] in [a["path"] for a in run["assetSelection"] or []]
        and (run["startTime"] or not started)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port", type=int, default=3137)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edit-loop-"))
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=IGNORED, symlinks=True)
        else:
            shutil.copy2(source, work / name)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "AUTOPILOT_DUCKDB_PATH": str(work / "warehouse.duckdb"),
        "PYTHONPATH": str(work / "src"),
    }
    (work / "dagster_home").mkdir()
    # Background processes here may inherit SIGTERM/SIGINT as ignored: restore them for dg dev.
    launcher = (
        "import os, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_DFL);"
        " signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"
    )
    dg = str(Path(sys.executable).parent / "dg")
    log = open(work / "dg_dev.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-c", launcher, dg, "dev", "-p", str(args.port)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    latencies = []
    try:
        t0 = time.time()
        wait_for(
            "the code location",
            lambda: (
                graphql(args.port, LOCATIONS)["workspaceOrError"]["locationEntries"][0]["loadStatus"]
                == "LOADED"
            ),
            300,
        )
        wait_for(
            "the first automation run to finish",
            lambda: any(r["status"] == "SUCCESS" for r in runs_of(args.port, "stg_customers", t0, True)),
            300,
        )
        model = work / "analytics_dbt" / "models" / "staging" / "stg_customers.sql"
        for repeat in range(args.repeats):
            time.sleep(12)  # let the previous run's ticks settle
            text = model.read_text()
            model.write_text(
                text.replace("as full_name,", f"as full_name,\n        {repeat} as v{repeat},", 1)
            )
            saved = time.time()
            (run,) = wait_for(
                "a run of stg_customers",
                lambda saved=saved: runs_of(args.port, "stg_customers", saved, True)[:1],
                300,
            )
            latencies.append(run["creationTime"] - saved)
            print(
                f"repeat {repeat + 1}: save -> run requested in {latencies[-1]:.1f} s,"
                f" started {run['startTime'] - saved:.1f} s",
                flush=True,
            )
            wait_for(
                "that run to finish",
                lambda saved=saved: any(
                    r["status"] in ("SUCCESS", "FAILURE")
                    for r in runs_of(args.port, "stg_customers", saved, True)
                ),
                300,
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    print(f"median save -> run requested: {statistics.median(latencies):.1f} s")
    print(f"(dg dev log: {work / 'dg_dev.log'})")


if __name__ == "__main__":
    main()
