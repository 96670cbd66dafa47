"""A run launcher that starts each run in a process forked from one that has already imported the code.

Dagster's `DefaultRunLauncher` asks the code server to spawn a fresh Python process per run. That
process imports dagster, dbt and the project, and loads the definitions, before the run starts:
about 10 s of CPU on a small machine, paid again by every run. `PreloadedRunLauncher` keeps one
`forkserver` process per launcher process (the daemon) that imports `preload_modules` once. Each run
is forked from it, so a run starts after the definitions are loaded, not after the imports too.

The run itself executes exactly as under `dagster api execute_run`, the command that Dagster's
Docker and Kubernetes launchers run: same run worker, same events, same compute logs.

Use it on one machine, for services that share the project's Python environment (as
`deploy/workspace.yaml` does). Preloaded modules are the ones of the daemon's start: restart the
daemon when the Python code changes (the dbt project's state is read by every run, so a new dbt
parse needs no restart). On more than one machine, use dagster-k8s's launcher instead.
"""

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import psutil
from dagster import Array, DagsterInstance, DagsterRun, Field

from dagster_autopilot._dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClassData,
    DefaultRunLauncher,
    InstanceRef,
    LaunchRunContext,
    WorkerStatus,
    capture_interrupts,
    execute_run_command_body,
    start_run_cancellation_thread,
)

# Which process runs a run, so that `terminate` (called by the webserver) can interrupt it, and
# when it started, so that another process that later gets the same pid is not taken for it.
WORKER_PID_TAG = "autopilot/run_worker_pid"
WORKER_STARTED_TAG = "autopilot/run_worker_started"
# Set in the run worker's environment, and so inherited by every process it starts (the
# multiprocess executor's step processes, and theirs, such as dbt): how the launcher finds the
# processes of a run whose worker died, since they are then no longer its descendants.
RUN_ID_ENV = "AUTOPILOT_RUN_ID"


class PreloadedRunLauncher(DefaultRunLauncher):
    """Launches each run in a process forked from a warm `forkserver` that imported `preload_modules`.

    Configured in `dagster.yaml`:

        run_launcher:
          module: dagster_autopilot.runs.launcher
          class: PreloadedRunLauncher
          config:
            preload_modules: [autopilot_deployment.definitions]
    """

    def __init__(
        self, preload_modules: Sequence[str] = (), inst_data: ConfigurableClassData | None = None
    ):
        super().__init__(inst_data=inst_data)
        self._preload_modules = ["dagster._cli.api", *preload_modules]
        self._context: Any = None  # the forkserver context, once the first run is launched

    @property
    def preload_modules(self) -> list[str]:
        """What the warm process imports before it forks any run."""
        return list(self._preload_modules)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "preload_modules": Field(
                Array(str),
                is_required=False,
                default_value=[],
                description=(
                    "Modules the warm process imports once, e.g. the code location's module. "
                    "A module that fails to import is skipped there and imported by each run."
                ),
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> "PreloadedRunLauncher":
        return cls(preload_modules=config_value.get("preload_modules", []), inst_data=inst_data)

    def _forkserver(self) -> Any:
        # Started on the first launch, not in __init__: the webserver builds this launcher too (to
        # terminate runs) and must not pay for a warm process it never uses.
        if self._context is None:
            self._context = multiprocessing.get_context("forkserver")
            self._context.set_forkserver_preload(self._preload_modules)
        return self._context

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        worker = self._forkserver().Process(
            target=_run_worker,
            args=(run.run_id, self._instance.get_ref()),
            name=f"dagster-run-{run.run_id}",
        )
        worker.start()
        tags = {WORKER_PID_TAG: str(worker.pid)}
        with contextlib.suppress(psutil.NoSuchProcess):
            tags[WORKER_STARTED_TAG] = repr(psutil.Process(worker.pid).create_time())
        self._instance.add_run_tags(run.run_id, tags)
        self._run_ids.add(run.run_id)
        threading.Thread(
            target=self._fail_run_when_its_worker_dies,
            args=(run.run_id, worker),
            name=f"watch-run-worker-{run.run_id}",
            daemon=True,
        ).start()

    def _fail_run_when_its_worker_dies(self, run_id: str, worker: Any) -> None:
        """Waits for the run worker to exit. A worker that exits before its run is finished was
        killed (by hand, or by the out-of-memory killer): its steps are stopped before the run is
        marked failed, so that no step of a failed run writes anything."""
        worker.join()
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return
        stopped = stop_run_processes(run_id)
        self._instance.report_run_failed(
            run,
            f"The run worker process {worker.pid} exited with code {worker.exitcode} before the run "
            f"finished. {_stopped_message(stopped)}",
        )

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        # The worker also watches for CANCELING itself (see `_run_worker`); the signal is faster.
        pid = _worker_pid(run)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """Run monitoring asks this of every started run: a worker that died (killed, out of
        memory) is reported FAILED, so its run fails instead of staying in progress forever and
        keeping the automation's "not busy" guard closed."""
        pid = _worker_pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"no {WORKER_PID_TAG} tag")
        if _is_running(pid, run.tags.get(WORKER_STARTED_TAG)):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        # Monitoring marks the run failed on this answer: its steps are stopped first.
        stopped = stop_run_processes(run.run_id)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker process {pid} is gone. {_stopped_message(stopped)}"
        )


def stop_run_processes(run_id: str) -> list[int]:
    """Kills every process of run `run_id` (see RUN_ID_ENV); returns their pids."""
    stopped = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            if process.pid != os.getpid() and process.environ().get(RUN_ID_ENV) == run_id:
                process.kill()
                stopped.append(process.pid)
    return stopped


def _stopped_message(stopped: list[int]) -> str:
    if not stopped:
        return "No process of the run was left."
    return f"Killed the run's remaining processes {sorted(stopped)}."


def _is_running(pid: int, started: str | None) -> bool:
    """Whether the worker `pid` still runs: a process with that pid that started at the tagged
    time (when there is a tag) and has not exited."""
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - float(started)) > 0.5:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _worker_pid(run: DagsterRun) -> int | None:
    """The pid `launch_run` tagged the run with; None for a run this launcher did not start."""
    pid = run.tags.get(WORKER_PID_TAG)
    return int(pid) if pid else None


def _run_worker(run_id: str, instance_ref: InstanceRef) -> None:
    """The forked run process: the body of `dagster api execute_run` (a private function of
    dagster 1.13), plus a thread that interrupts the run once it is marked CANCELING."""
    os.environ[RUN_ID_ENV] = run_id
    with capture_interrupts(), DagsterInstance.from_ref(instance_ref) as instance:
        watcher, stop_watching = start_run_cancellation_thread(instance, run_id)
        try:
            execute_run_command_body(
                run_id, instance, lambda _event: None, set_exit_code_on_failure=False
            )
        finally:
            stop_watching.set()
            watcher.join(timeout=15)
