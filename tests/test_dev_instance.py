"""The instance settings `dg dev` uses when DAGSTER_HOME is not set: the project's `dagster.yaml`,
read from the folder `dg dev` runs in (the project root) next to a temporary storage folder."""

import contextlib
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._core.events import DagsterEventType
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from harness import REPO_ROOT, copy_project

from dagster_autopilot.runs.launcher import WORKER_PID_TAG, PreloadedRunLauncher

# Run monitoring must fail a run whose worker is gone within this long.
DEAD_WORKER_DEADLINE_SECONDS = 120


@pytest.fixture
def dev_instance(tmp_path: Path):
    # What `dg dev` does without DAGSTER_HOME (dagster._cli.utils._get_temporary_instance): storage
    # in a temporary folder, settings from the dagster.yaml of the folder it runs in.
    with dg.DagsterInstance.from_ref(
        InstanceRef.from_dir(str(tmp_path), config_dir=str(REPO_ROOT))
    ) as instance:
        yield instance


def test_no_telemetry_and_no_community_prompt(dev_instance: dg.DagsterInstance):
    assert not dev_instance.telemetry_enabled
    assert not dev_instance.nux_enabled


def test_run_monitoring_fails_a_dead_worker_s_run_within_two_minutes(
    dev_instance: dg.DagsterInstance,
):
    assert dev_instance.run_monitoring_enabled
    # A dead worker is found at the daemon's next monitoring pass, and its run failed at once (no
    # attempt to resume it).
    assert dev_instance.run_monitoring_poll_interval_seconds <= DEAD_WORKER_DEADLINE_SECONDS / 2
    # A worker that dies before its run starts leaves the run STARTING, which monitoring fails
    # only after the start timeout, seen at the next pass after it.
    start_deadline = (
        dev_instance.run_monitoring_start_timeout_seconds
        + dev_instance.run_monitoring_poll_interval_seconds
    )
    assert start_deadline <= DEAD_WORKER_DEADLINE_SECONDS
    assert dev_instance.run_monitoring_max_resume_run_attempts == 0
    assert isinstance(dev_instance.run_launcher, PreloadedRunLauncher)

    dead_worker = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_worker.wait()
    run = dev_instance.create_run_for_job(
        dg.Definitions(jobs=[_a_job]).get_job_def("a_job"),
        status=DagsterRunStatus.STARTED,
        tags={WORKER_PID_TAG: str(dead_worker.pid)},
    )
    assert dev_instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
    # What the monitoring daemon does with each started run at each pass.
    monitor_started_run(
        dev_instance, None, dev_instance.get_run_record_by_id(run.run_id), logging.getLogger()
    )
    assert dev_instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


@pytest.fixture
def dg_dev(tmp_path: Path):
    """`dg dev` on a copy of the project with its dagster.yaml, and no DAGSTER_HOME: the project
    folder, the process, and its log."""
    root = copy_project(tmp_path / "project")
    shutil.copy2(REPO_ROOT / "dagster.yaml", root / "dagster.yaml")
    venv_bin = Path(sys.executable).parent
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DAGSTER_HOME", "DAGSTER_IS_DEV_CLI", "PYTEST_CURRENT_TEST")
    }
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(root / "src"),  # the copy's package, not the repository's
        AUTOPILOT_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"),
        NO_COLOR="1",
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "dg_dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv_bin / "dg"), "dev", "--port", str(port), "--use-active-venv"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped whole at the end
        )
    try:
        yield root, process, log
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl-C: dg dev stops its services
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _wait_for(what: str, probe, timeout: float, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        assert process.poll() is None, f"dg dev exited:\n{log.read_text(errors='replace')[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


# The SQLite databases of a DAGSTER_HOME, and the table dagster creates in each after stamping its
# schema version (none for the event log's index).
_STORAGE_DATABASES = {
    "history/runs.db": "instance_info",
    "history/runs/index.db": None,
    "schedules/schedules.db": None,
}


def _storage_ready(home: Path) -> bool:
    """Whether dg dev's services have finished creating the storage of `home`. Opening it earlier
    races them: both sides find no tables and both create them ("table runs already exists")."""
    for database, last_table in _STORAGE_DATABASES.items():
        path = home / database
        if not path.exists():
            return False
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                if not db.execute("select count(*) from alembic_version").fetchone()[0]:
                    return False
                if (
                    last_table
                    and not db.execute(
                        "select count(*) from sqlite_master where type = 'table' and name = ?",
                        (last_table,),
                    ).fetchone()[0]
                ):
                    return False
        except sqlite3.Error:  # no alembic_version table yet, or the file is being written
            return False
    return True


def _run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    """The pid the run worker reports when it starts, whichever launcher started it."""
    events = instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
    return next(
        int(event.dagster_event.engine_event_data.metadata["pid"].value)
        for event in events
        if event.dagster_event.message.startswith("Started process for run")
    )


def _worker_running(instance: dg.DagsterInstance, command: str):
    """A started run whose worker has a descendant running `command`: (run, worker, descendants)."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        with contextlib.suppress(psutil.Error, StopIteration):
            worker = psutil.Process(_run_worker_pid(instance, run.run_id))
            processes = worker.children(recursive=True)
            if any(command in " ".join(p.cmdline()) for p in processes):
                return run, worker, processes
    return None


def test_dg_dev_fails_the_run_of_a_killed_worker_and_stops_its_steps(dg_dev):
    root, process, log = dg_dev
    home = _wait_for(
        "dg dev's temporary DAGSTER_HOME, its storage created",
        lambda: next((home for home in root.glob(".tmp_dagster_home_*") if _storage_ready(home)), None),
        120,
        process,
        log,
    )
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), config_dir=str(root))) as dev:
        # The automation sensor's first run builds the seeds and views with dbt.
        run, worker, processes = _wait_for(
            "a run running dbt", lambda: _worker_running(dev, "dbt"), 300, process, log
        )
        worker.kill()
        _wait_for(
            "the run to be marked failed",
            lambda: dev.get_run_by_id(run.run_id).is_finished,
            60,
            process,
            log,
        )
        assert dev.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        left = [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"processes of the failed run still running: {left}"


@dg.op
def _an_op() -> None:
    pass


@dg.job(name="a_job")
def _a_job():
    _an_op()
