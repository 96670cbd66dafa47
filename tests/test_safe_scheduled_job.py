"""The hourly tables schedule skips instead of overlapping, and says which run blocked it."""

import dagster as dg
import pytest
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from harness import MONDAY_1AM, Ticker

SCHEDULE = "hourly_dbt_tables_job_schedule"
JOB = "hourly_dbt_tables_job"


def _origin_of(job_name: str) -> RemoteJobOrigin:
    # Run storage only accepts a queued run that says where it came from, as a launched run does.
    location = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(module_name="autopilot_deployment.definitions")
    )
    return RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=location, repository_name="__repository__"
        ),
        job_name=job_name,
    )


@pytest.fixture
def evaluate(project_defs: dg.Definitions, ticker: Ticker):
    repository = project_defs.get_repository_def()
    schedule = project_defs.get_schedule_def(SCHEDULE)

    def tick() -> dg.RunRequest | dg.SkipReason:
        context = dg.build_schedule_context(
            instance=ticker.instance, repository_def=repository, scheduled_execution_time=MONDAY_1AM
        )
        return schedule.evaluate_tick(context)

    return tick


def test_schedule_is_declared_hourly_over_the_tables(project_defs: dg.Definitions):
    schedule = project_defs.get_schedule_def(SCHEDULE)
    assert schedule.cron_schedule == "0 * * * *"
    job = project_defs.get_repository_def().get_job("hourly_dbt_tables_job")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert selected == {"customer_orders", "order_summary", "customer_segments"}


def test_requests_a_run_when_nothing_is_running(evaluate):
    data = evaluate()
    assert len(data.run_requests) == 1
    assert data.skip_message is None


@pytest.mark.parametrize(
    "status",
    [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ],
)
def test_skips_while_the_same_job_is_in_progress(evaluate, ticker, status):
    run = ticker.instance.add_run(
        dg.DagsterRun(job_name=JOB, status=status, remote_job_origin=_origin_of(JOB))
    )
    data = evaluate()
    assert data.run_requests == []
    assert data.skip_message.startswith("Hourly dbt tables schedule: ")
    assert run.run_id in data.skip_message


def test_a_finished_run_of_the_job_does_not_block(evaluate, ticker):
    ticker.instance.add_run(dg.DagsterRun(job_name=JOB, status=dg.DagsterRunStatus.FAILURE))
    assert len(evaluate().run_requests) == 1


def test_skips_while_another_run_builds_one_of_its_tables(evaluate, ticker):
    run = ticker.start_run({"order_summary"})
    data = evaluate()
    assert data.run_requests == []
    assert run.run_id in data.skip_message
    assert "order_summary" in data.skip_message


def test_a_run_of_unrelated_assets_does_not_block(evaluate, ticker):
    ticker.start_run({"stg_orders"})
    assert len(evaluate().run_requests) == 1
