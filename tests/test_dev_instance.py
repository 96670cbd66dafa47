"""The instance settings `dg dev` uses when DAGSTER_HOME is not set: the project's `dagster.yaml`,
read from the folder `dg dev` runs in (the project root) next to a temporary storage folder."""

import logging
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from harness import REPO_ROOT

from dagster_autopilot.run_launcher import WORKER_PID_TAG, PreloadedRunLauncher

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


@dg.op
def _an_op() -> None:
    pass


@dg.job(name="a_job")
def _a_job():
    _an_op()
