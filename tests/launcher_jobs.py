"""Two tiny jobs for `test_run_launcher.py`, importable by module name as a code location."""

import time

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


defs = dg.Definitions(jobs=[quick, slow])
