"""The `dg dev` edit loop: seconds from saving a model's SQL to the automation's request for it.

    uv run python benchmarks/bench_edit_loop.py [--repeats 5] [--port 3137]

Starts `dg dev` on a copy of this project (a temporary DAGSTER_HOME and DuckDB file), waits until
the automation sensor has built the missing seeds and views, then, for each repeat, adds a column to
`stg_customers.sql` and times the save until the sensor requests a run that builds `stg_customers`
(the run's creation), and until that run starts. Nobody clicks "Reload definitions": the dbt
project watcher does it.

Each repeat is split into stages, from the save:
- `reload asked`: the watcher saw the save, refreshed the parse in its own process and asked the
  webserver to reload (from the watcher's log line in `dg_dev.log`);
- `loaded`: the webserver has the reloaded code location (its `updatedTimestamp`);
- `tick`: the automation sensor's tick that requested the run started (the wait for the sensor
  interval, plus the daemon noticing the new code server);
- `requested`: that tick created the run (the target);
- `started`: the run's process started.
"""

import argparse
import json
import os
import re
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
COPIED = ("dg.toml", "pyproject.toml", "uv.lock", "defs", "analytics_dbt", "src", "data")
IGNORED = shutil.ignore_patterns(".local_defs_state", "target", "logs", "__pycache__", "*.duckdb")
SENSOR = "autopilot_automation_sensor"
TARGET_SECONDS = 20
RUNS = """query($after: Float) { runsOrError(filter: {createdAfter: $after}) {
  ... on Runs { results { runId status creationTime startTime assetSelection { path } } } } }"""
LOCATIONS = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus updatedTimestamp } } } }"
)
TICKS = """query($selector: SensorSelector!, $after: Float) { sensorOrError(sensorSelector: $selector) {
  ... on Sensor { sensorState { ticks(limit: 50, afterTimestamp: $after) { timestamp runIds } } } } }"""
RELOAD_ASKED = re.compile(r"to reload the code locations at=(\d+\.\d+)")
STAGES = ("reload asked", "loaded", "tick", "requested", "started")


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """POSTs a GraphQL query to the webserver on `port`; returns its `data`."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def wait_for(what: str, check, timeout: float) -> object:
    """Polls `check` until it returns something truthy; raises after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def runs_of(port: int, key: str, after: float, started: bool) -> list[dict]:
    """Runs created after `after` that build `key` (only started ones if `started`)."""
    results = graphql(port, RUNS, {"after": after})["runsOrError"]["results"]
    return [
        run
        for run in results
        if [key] in [a["path"] for a in run["assetSelection"] or []]
        and (run["startTime"] or not started)
    ]


def location(port: int) -> dict:
    """The (single) code location entry of the workspace."""
    return graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"][0]


def requesting_tick_start(port: int, location_name: str, run_id: str, after: float) -> float | None:
    """When the sensor tick that created `run_id` started."""
    selector = {
        "repositoryLocationName": location_name,
        "repositoryName": "__repository__",
        "sensorName": SENSOR,
    }
    data = graphql(port, TICKS, {"selector": selector, "after": after})["sensorOrError"]
    for tick in (data.get("sensorState") or {}).get("ticks") or []:
        if run_id in tick["runIds"]:
            return tick["timestamp"]
    return None


def reload_asked_after(log_path: Path, saved: float) -> float | None:
    """The first time after `saved` the watcher logged that it asked for a reload."""
    times = [float(t) for t in RELOAD_ASKED.findall(log_path.read_text(errors="replace"))]
    return min((t for t in times if t >= saved), default=None)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--port", type=int, default=3137)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edit-loop-"))
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=IGNORED, symlinks=True)
        elif source.exists():
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
    log_path = work / "dg_dev.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-c", launcher, dg, "dev", "-p", str(args.port)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    try:
        t0 = time.time()
        wait_for("the code location", lambda: location(args.port)["loadStatus"] == "LOADED", 300)
        wait_for(
            "the first automation run to finish",
            lambda: any(r["status"] == "SUCCESS" for r in runs_of(args.port, "stg_customers", t0, True)),
            300,
        )
        model = work / "analytics_dbt" / "models" / "staging" / "stg_customers.sql"
        for repeat in range(args.repeats):
            time.sleep(12)  # let the previous run's ticks settle
            location_name = location(args.port)["name"]
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
            moments = {
                "reload asked": reload_asked_after(log_path, saved),
                "loaded": location(args.port)["updatedTimestamp"],
                "tick": requesting_tick_start(args.port, location_name, run["runId"], saved),
                "requested": run["creationTime"],
                "started": run["startTime"],
            }
            for stage, moment in moments.items():
                if moment is not None:
                    stages[stage].append(moment - saved)
            print(
                f"repeat {repeat + 1}: "
                + ", ".join(
                    f"{stage} {moment - saved:.1f} s" if moment else f"{stage} ?"
                    for stage, moment in moments.items()
                ),
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
    print()
    print("| seconds after the save | median | min | max |")
    print("|---|---:|---:|---:|")
    for stage, samples in stages.items():
        if samples:
            print(
                f"| {stage} | {statistics.median(samples):.1f} | {min(samples):.1f} |"
                f" {max(samples):.1f} |"
            )
    requested = statistics.median(stages["requested"])
    verdict = "ok" if requested <= TARGET_SECONDS else "MISSED"
    print(f"\nmedian save -> run requested: {requested:.1f} s (target <= {TARGET_SECONDS} s: {verdict})")
    print(f"(dg dev log: {log_path})")


if __name__ == "__main__":
    main()
