"""The production deployment, for real: `dagster-daemon` and `dagster-webserver` as separate
processes on `deploy/dagster.yaml` (PostgreSQL storage, queued runs), loading the project from
`deploy/workspace.yaml`, with the dbt `postgres` target as the warehouse.

Each service is started through `deploy/run_service.py`, as in production, and stopped by its pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness import REPO_ROOT, copy_project

VENV_BIN = Path(sys.executable).parent
LOCATION = "dagster_autopilot"
SENSOR = "autopilot_automation_sensor"
AUTOMATION_TAG = "dagster/from_automation_condition"
IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
# The chaos test fails runs on purpose and waits for their assets to be requested again: the copy's
# automated assets wait 15 s after a failure instead of the default 5 minutes.
SHORT_BACKOFF = "{base: 15s, cap: 1m, max_failures: 5}"
T = TypeVar("T")


class ServiceError(AssertionError):
    pass


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """`probe()`'s first truthy result, or an AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may contain spaces), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`, with its start time (to tell it from a reused pid)."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        # fields[0] is the state, fields[1] the ppid, fields[19] the start time.
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = started[child]
                stack.append(child)
    return found


def _alive(pid: int, start_time: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[19] == start_time and fields[0] != "Z"


def as_a_background_job() -> None:
    """What a background job of a non-interactive shell inherits: SIGINT ignored, and SIGTERM too
    under some supervisors. `deploy/run_service.py` must undo both for `kill <pid>` to work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def ignored_signals(pid: int) -> set[int]:
    """The signals process `pid` ignores (its SigIgn mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {number + 1 for number in range(64) if mask >> number & 1}
    return set()


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class StopResult:
    name: str
    returncode: int | None
    stopped_by_term: bool
    seconds: float
    leftover_children: list[int] = field(default_factory=list)
    exited_before_stop: bool = False


@dataclass
class Deployment:
    root: Path
    dagster_home: Path
    env: dict[str, str]
    url: str = ""
    services: dict[str, Service] = field(default_factory=dict)
    warehouse: Any = None
    """The warehouse database's login (`conftest.Postgres`)."""

    # ---- processes ------------------------------------------------------------------------

    def start(self, name: str, *command: str) -> Service:
        """Starts service `name`; a restarted service appends to the log of the one it replaces."""
        log = self.dagster_home / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, str(self.root / "deploy" / "run_service.py"), *command],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=as_a_background_job,
            )
        service = Service(name, process, log)
        self.services[name] = service
        return service

    def assert_running(self) -> None:
        for service in self.services.values():
            if service.process.poll() is not None:
                raise ServiceError(
                    f"{service.name} exited with {service.process.returncode}:\n{service.tail()}"
                )

    def stop(self, timeout: float = 60) -> list[StopResult]:
        """SIGTERM to each service, by pid; SIGKILL only after `timeout` s, and reported.

        The code servers each service started must exit with it (or, for one still finishing a
        run, soon after); any left over after `timeout` s is killed and reported.
        """
        results = []
        for service in self.services.values():
            process = service.process
            children = _descendants(process.pid)
            started = time.monotonic()
            running = process.poll() is None
            by_term = False
            if running:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                    by_term = True
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            leftover = []
            deadline = time.monotonic() + timeout
            for child, start_time in sorted(children.items()):
                while _alive(child, start_time) and time.monotonic() < deadline:
                    time.sleep(0.5)
                if _alive(child, start_time):
                    os.kill(child, signal.SIGKILL)
                    leftover.append(child)
            results.append(
                StopResult(
                    service.name,
                    process.returncode,
                    by_term,
                    round(time.monotonic() - started, 1),
                    leftover,
                    exited_before_stop=not running,
                )
            )
        return results

    # ---- GraphQL --------------------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": dict(variables or {})}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        if body.get("errors"):
            raise ServiceError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def location_loaded(self) -> bool:
        try:
            data = self.graphql(WORKSPACE)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        entries = data["workspaceOrError"].get("locationEntries", [])
        for entry in entries:
            if entry["name"] != LOCATION or entry["loadStatus"] != "LOADED":
                continue
            location = entry["locationOrLoadError"]
            if location and location["__typename"] == "PythonError":
                raise ServiceError(f"code location failed to load: {location['message']}")
            return True
        return False

    def launch(self, asset: str, tags: Mapping[str, str] | None = None) -> str:
        """Launches a run of `asset` as the UI's Materialize button does; returns its id."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": asset.split("/")}],
            },
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }
        result = self.graphql(LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise ServiceError(f"launchRun failed: {result}")
        return result["run"]["runId"]

    def terminate(self, run_id: str) -> None:
        result = self.graphql(TERMINATE, {"runId": run_id})["terminateRun"]
        if result["__typename"] != "TerminateRunSuccess":
            raise ServiceError(f"terminateRun failed: {result}")

    def runs(self, **run_filter: Any) -> list[dict]:
        """Runs, newest first, as the GraphQL RunsFilter selects them."""
        return self.graphql(RUNS, {"filter": run_filter})["runsOrError"]["results"]

    def run(self, run_id: str) -> dict:
        (found,) = self.runs(runIds=[run_id])
        return found

    def wait_for_run(self, run_id: str, timeout: float) -> dict:
        def finished() -> dict | None:
            self.assert_running()
            run = self.run(run_id)
            return run if run["status"] not in IN_PROGRESS else None

        run = wait_for(f"run {run_id} to finish", finished, timeout, interval=1)
        if run["status"] != "SUCCESS":
            raise ServiceError(f"run {run_id} ended {run['status']}:\n{self.run_failure(run_id)}")
        return run

    def run_failure(self, run_id: str) -> str:
        events = self.graphql(RUN_EVENTS, {"runId": run_id})["logsForRun"].get("events", [])
        failures = [e for e in events if e["__typename"].endswith("FailureEvent")]
        # A step failure's message only names the step; its error says what went wrong.
        return "\n".join(
            e["message"] + (f"\n{e['error']['message']}" if e.get("error") else "") for e in failures
        )

    def assert_no_failed_runs(self, runs: list[dict]) -> None:
        """Raises with each failed run's step errors, so a waiting test fails at once, saying why."""
        failed = [r["runId"] for r in runs if r["status"] in ("FAILURE", "CANCELED")]
        if failed:
            raise ServiceError(f"runs failed: {[self.run_failure(f) for f in failed]}")

    def latest_materialization(self, asset: str) -> dict | None:
        data = self.graphql(MATERIALIZATION, {"key": {"path": asset.split("/")}})["assetOrError"]
        found = data.get("assetMaterializations") or []
        return found[0] if found else None

    def materializations_after(self, asset: str, timestamp: float) -> list[dict]:
        """The materializations of `asset` after `timestamp` (s since the epoch), newest first."""
        variables = {"key": {"path": asset.split("/")}, "after": str(int(timestamp * 1000))}
        data = self.graphql(MATERIALIZATIONS_AFTER, variables)["assetOrError"]
        return data.get("assetMaterializations") or []

    def asset_tags(self) -> dict[str, dict[str, str]]:
        nodes = self.graphql(ASSET_NODES)["assetNodes"]
        return {
            "/".join(n["assetKey"]["path"]): {t["key"]: t["value"] for t in n["tags"]} for n in nodes
        }


def asset_keys(run: dict) -> set[str]:
    """The assets a run (as GraphQL returns it) was launched to build."""
    return {"/".join(selected["path"]) for selected in run["assetSelection"] or []}


def run_tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def settle(deployment: Deployment, timeout: float = 420) -> set[str]:
    """On a fresh instance the sensor's first ticks build every missing seed and view (tables
    wait for their cron). Waits until those runs are done; returns the seeds and views."""
    tags = deployment.asset_tags()
    on_change = {
        key
        for key, asset_tags in tags.items()
        if asset_tags.get("dagster/materialization") in ("seed", "view")
    }
    if not {"raw_customers", "stg_customers"} <= on_change:
        raise ServiceError(f"unexpected assets: {tags}")

    def done() -> list[dict] | None:
        deployment.assert_running()
        runs = deployment.runs()
        deployment.assert_no_failed_runs(runs)
        if not runs or any(r["status"] in IN_PROGRESS for r in runs):
            return None
        if any(deployment.latest_materialization(key) is None for key in on_change):
            return None
        return runs

    # The daemon's first tick comes once it has loaded the code location (a minute here).
    runs = wait_for("the sensor to build the missing seeds and views", done, timeout, interval=2)
    launched_by = {
        (run_tags(r).get(AUTOMATION_TAG), run_tags(r).get("dagster/sensor_name")) for r in runs
    }
    if launched_by != {("true", SENSOR)}:
        raise ServiceError(f"runs not launched by {SENSOR}: {runs}")
    return on_change


def prepare(tmp: Path, dagster_db: Mapping[str, str], warehouse: Mapping[str, str]) -> Deployment:
    """A copy of the project with `deploy/`, its dbt state prepared, and a DAGSTER_HOME."""
    root = copy_project(tmp / "project")
    shutil.copytree(REPO_ROOT / "deploy", root / "deploy")
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir()
    shutil.copy2(root / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        key: value
        for key, value in os.environ.items()
        # A service must not think it is `dg dev`, nor read the test session's settings.
        if key not in ("DAGSTER_IS_DEV_CLI", "PYTEST_CURRENT_TEST", "DAGSTER_HOME")
        and not key.startswith(("DAGSTER_PG_", "POSTGRES_", "DBT_"))
    }
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            # The copy's package, not the editable install of the repository.
            "PYTHONPATH": str(root / "src"),
            "DAGSTER_HOME": str(dagster_home),
            "AUTOPILOT_DUCKDB_PATH": str(tmp / "unused.duckdb"),
            "NO_COLOR": "1",
            **dagster_db,
            **warehouse,
        }
    )
    deployment = Deployment(root=root, dagster_home=dagster_home, env=env)
    _shorten_backoffs(root)
    # The production deploy step: parse the dbt project once, so the services load its state
    # instead of running `dbt parse` in every process.
    refreshed = subprocess.run(
        [str(VENV_BIN / "dg"), "utils", "refresh-defs-state"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if refreshed.returncode != 0:
        raise ServiceError(f"dg utils refresh-defs-state failed:\n{refreshed.stdout}{refreshed.stderr}")
    return deployment


def _replace(path: Path, old: str, new: str, count: int) -> None:
    text = path.read_text()
    if text.count(old) != count:
        raise ServiceError(f"{path}: expected {count} of {old!r}, found {text.count(old)}")
    path.write_text(text.replace(old, new))


def _shorten_backoffs(root: Path) -> None:
    """SHORT_BACKOFF for the talent pipeline's dbt models, vectors and matches."""
    _replace(
        root / "defs" / "analytics" / "defs.yaml",
        "      policy:\n        cron: null\n",
        f"      policy:\n        cron: null\n        backoff: {SHORT_BACKOFF}\n",
        count=1,
    )
    _replace(
        root / "defs" / "talent" / "defs.yaml",
        "  automation: eager\n",
        f"  automation: {{backoff: {SHORT_BACKOFF}}}\n",
        count=3,
    )


WORKSPACE_ARGS = ("-w", "deploy/workspace.yaml")


def start_daemon(deployment: Deployment) -> Service:
    """Starts (or, after it was killed, restarts) `dagster-daemon`."""
    return deployment.start("daemon", str(VENV_BIN / "dagster-daemon"), "run", *WORKSPACE_ARGS)


def start_services(deployment: Deployment, timeout: float = 300) -> Deployment:
    workspace = list(WORKSPACE_ARGS)
    start_daemon(deployment)
    port = _free_port()
    deployment.url = f"http://127.0.0.1:{port}"
    deployment.start(
        "webserver",
        str(VENV_BIN / "dagster-webserver"),
        *workspace,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    )

    def ready() -> bool:
        deployment.assert_running()
        return deployment.location_loaded()

    wait_for("the webserver to load the code location", ready, timeout, interval=1)
    return deployment


WORKSPACE = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}"""

LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

TERMINATE = """
mutation($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunFailure { message }
    ... on PythonError { message }
  }
}"""

RUNS = """
query($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 50) {
    __typename
    ... on Runs {
      results {
        runId status creationTime startTime endTime
        tags { key value }
        assetSelection { path }
      }
    }
  }
}"""

RUN_EVENTS = """
query($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
  }
}"""

MATERIALIZATION = """
query($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(limit: 1) { timestamp runId } }
  }
}"""

MATERIALIZATIONS_AFTER = """
query($key: AssetKeyInput!, $after: String!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(afterTimestampMillis: $after) { timestamp runId } }
  }
}"""

ASSET_NODES = """
query { assetNodes { assetKey { path } tags { key value } } }"""
