"""Tiny jobs for `test_run_launcher.py`, importable by module name as a code location."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg


@dg.op
def do_nothing() -> None:
    pass


@dg.op
def sleep_long() -> None:
    time.sleep(120)


@dg.job
def quick():
    do_nothing()


@dg.job
def slow():
    sleep_long()


@dg.op(config_schema={"marker_dir": str})
def write_late(context: dg.OpExecutionContext) -> None:
    """A step, in its own process, with a subprocess of its own (as dbt is): both write their pids
    to `marker_dir`, then the step records a materialization a minute later."""
    marker_dir = Path(context.op_config["marker_dir"])
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (marker_dir / "subprocess.pid").write_text(str(child.pid))
    (marker_dir / "step.pid").write_text(str(os.getpid()))
    time.sleep(60)
    context.log_event(dg.AssetMaterialization("written_late"))


@dg.job
def step_with_subprocess():
    write_late()


defs = dg.Definitions(jobs=[quick, slow, step_with_subprocess])
