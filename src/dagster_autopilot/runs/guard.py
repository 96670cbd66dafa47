"""Finds a run that a new run of a job would overlap."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet

import dagster as dg

from dagster_autopilot._dagster_internals import NOT_FINISHED_STATUSES


def find_blocking_run(
    instance: dg.DagsterInstance,
    job_name: str | None,
    asset_keys: AbstractSet[dg.AssetKey],
    keys_of_job: Callable[[str], AbstractSet[dg.AssetKey]] = lambda job_name: set(),
) -> tuple[dg.DagsterRun, str] | None:
    """The first unfinished run that blocks a new run of `job_name`, with why, or None.

    A run blocks when it is a run of the same job, or when it builds any of `asset_keys`: an
    automation-launched run of one of the job's tables counts as much as the job itself. A run with
    no explicit asset selection builds every asset of its job (`keys_of_job`). With `job_name`
    None (runs of a shared asset job, as a sensor's), only the assets count.
    """
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=NOT_FINISHED_STATUSES))
    for run in runs:
        if job_name is not None and run.job_name == job_name:
            return (
                run,
                f"job '{job_name}' already has run {run.run_id} ({run.status.value})",
            )
    for run in runs:
        keys = run.asset_selection or keys_of_job(run.job_name)
        overlap = sorted(key.to_user_string() for key in keys & asset_keys)
        if overlap:
            return run, (
                f"run {run.run_id} ({run.status.value}) of job '{run.job_name}' is building "
                f"{', '.join(overlap[:5])}{' and more' if len(overlap) > 5 else ''}"
            )
    return None
