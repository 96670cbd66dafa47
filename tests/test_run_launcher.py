"""`PreloadedRunLauncher`: runs start in processes forked from a warm one, and can be cancelled."""

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.launcher import LaunchRunContext, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRunStatus

from dagster_autopilot.run_launcher import WORKER_PID_TAG, PreloadedRunLauncher

TESTS = Path(__file__).parent
JOBS_MODULE = "launcher_jobs"
DAGSTER_YAML = f"""
run_launcher:
  module: dagster_autopilot.run_launcher
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


def _launch(instance: dg.DagsterInstance, job_name: str) -> str:
    import launcher_jobs

    repository = ReconstructableRepository.for_module(JOBS_MODULE, "defs", str(TESTS))
    recon_job = ReconstructableJob(repository, job_name)
    run = instance.create_run_for_job(
        launcher_jobs.defs.get_job_def(job_name), job_code_origin=recon_job.get_python_origin()
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
