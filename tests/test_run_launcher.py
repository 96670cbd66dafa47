"""`PreloadedRunLauncher`: runs start in processes forked from a warm one, and can be cancelled."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.events import DagsterEventType
from dagster._core.launcher import LaunchRunContext, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRunStatus

from dagster_autopilot.runs.launcher import (
    RUN_ID_ENV,
    WORKER_PID_TAG,
    WORKER_STARTED_TAG,
    PreloadedRunLauncher,
)

TESTS = Path(__file__).parent
JOBS_MODULE = "launcher_jobs"
DAGSTER_YAML = f"""
run_launcher:
  module: dagster_autopilot.runs.launcher
  class: PreloadedRunLauncher
  config:
    preload_modules: [{JOBS_MODULE}]
"""


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(TESTS))
    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def _launch(instance: dg.DagsterInstance, job_name: str, run_config: dict | None = None) -> str:
    import launcher_jobs

    repository = ReconstructableRepository.for_module(JOBS_MODULE, "defs", str(TESTS))
    recon_job = ReconstructableJob(repository, job_name)
    run = instance.create_run_for_job(
        launcher_jobs.defs.get_job_def(job_name),
        run_config=run_config,
        job_code_origin=recon_job.get_python_origin(),
    )
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run.run_id


def _wait_until(instance: dg.DagsterInstance, run_id: str, statuses: set, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still {run.status}, expected one of {statuses}")


def test_the_configured_launcher_runs_a_job_in_a_forked_worker(instance: dg.DagsterInstance):
    assert isinstance(instance.run_launcher, PreloadedRunLauncher)
    run_id = _launch(instance, "quick")
    run = _wait_until(instance, run_id, {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE})
    assert run.status == DagsterRunStatus.SUCCESS
    # The run worker that executed it is the process the launcher forked (and tagged), not this one.
    worker_pid = int(run.tags[WORKER_PID_TAG])
    messages = [entry.user_message for entry in instance.all_logs(run_id)]
    assert any(f"parent process (pid: {worker_pid})" in message for message in messages), messages
    assert worker_pid != os.getpid()


def test_terminate_cancels_a_running_run(instance: dg.DagsterInstance):
    run_id = _launch(instance, "slow")
    _wait_until(instance, run_id, {DagsterRunStatus.STARTED})
    assert instance.run_launcher.terminate(run_id)
    run = _wait_until(instance, run_id, {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE}, 60)
    assert run.status == DagsterRunStatus.CANCELED
    assert not instance.run_launcher.terminate(run_id), "a finished run is not terminated again"


def test_run_monitoring_sees_a_dead_worker(instance: dg.DagsterInstance):
    run_id = _launch(instance, "slow")
    run = _wait_until(instance, run_id, {DagsterRunStatus.STARTED})
    launcher = instance.run_launcher
    assert launcher.supports_check_run_worker_health
    assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    worker_pid = int(run.tags[WORKER_PID_TAG])
    os.kill(worker_pid, signal.SIGKILL)  # as the out-of-memory killer would
    deadline = time.monotonic() + 30
    while launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING:
        assert time.monotonic() < deadline, f"worker {worker_pid} still reported running"
        time.sleep(0.2)
    assert launcher.check_run_worker_health(run).status == WorkerStatus.FAILED


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_worker_takes_its_steps_and_their_subprocesses_with_it(
    instance: dg.DagsterInstance, tmp_path: Path
):
    run_config = {"ops": {"write_late": {"config": {"marker_dir": str(tmp_path)}}}}
    run_id = _launch(instance, "step_with_subprocess", run_config)
    step_pid_file = tmp_path / "step.pid"
    deadline = time.monotonic() + 120
    while not step_pid_file.exists():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.2)
    step_pid = int(step_pid_file.read_text())
    subprocess_pid = int((tmp_path / "subprocess.pid").read_text())
    worker_pid = int(instance.get_run_by_id(run_id).tags[WORKER_PID_TAG])
    assert step_pid != worker_pid

    os.kill(worker_pid, signal.SIGKILL)  # as the out-of-memory killer would
    run = _wait_until(instance, run_id, {DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS}, 30)
    # By the time the run is marked failed, nothing of it is left to write.
    assert run.status == DagsterRunStatus.FAILURE
    assert _gone(step_pid), "the step process outlived its failed run"
    assert _gone(subprocess_pid), "the step's subprocess outlived its failed run"
    failure = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)[-1].dagster_event
    assert f"run worker process {worker_pid} exited" in failure.message


def test_run_monitoring_stops_the_steps_of_a_worker_that_died_before_this_launcher_started(
    instance: dg.DagsterInstance,
):
    # The launcher of another daemon (one that was restarted since) started the run; this one
    # only learns of the dead worker from run monitoring's health check.
    run_id = str(uuid.uuid4())
    step = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        env={**os.environ, RUN_ID_ENV: run_id},
    )
    dead_worker = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_worker.wait()
    import launcher_jobs

    run = instance.create_run_for_job(
        launcher_jobs.defs.get_job_def("quick"),
        run_id=run_id,
        status=DagsterRunStatus.STARTED,
        tags={WORKER_PID_TAG: str(dead_worker.pid)},
    )
    try:
        result = instance.run_launcher.check_run_worker_health(run)
        assert result.status == WorkerStatus.FAILED, result
        assert step.wait(timeout=10) == -signal.SIGKILL
    finally:
        if step.poll() is None:
            step.kill()


def test_a_reused_worker_pid_is_not_mistaken_for_the_worker(instance: dg.DagsterInstance):
    import launcher_jobs

    # This test's own pid stands for a pid the system handed to another process after the worker
    # exited: alive, but started at another time than the worker.
    run = instance.create_run_for_job(
        launcher_jobs.defs.get_job_def("quick"),
        status=DagsterRunStatus.STARTED,
        tags={WORKER_PID_TAG: str(os.getpid()), WORKER_STARTED_TAG: "1.0"},
    )
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
