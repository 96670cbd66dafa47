"""SafeScheduledJobComponent: an asset job on a cron schedule that never overlaps itself."""

import dagster as dg

from dagster_autopilot.components.fields import ComponentModel, Cron, Timezone
from dagster_autopilot.runs.guard import find_blocking_run


class SafeScheduledJobComponent(ComponentModel):
    """An asset job and its schedule `<job_name>_schedule`, which skips a tick instead of overlapping.

    A tick is skipped, with the blocking run's id in the skip reason, while a run of this job is
    queued or running, or while any other run is building an asset of this job's selection (for
    example an automation-launched run of the same table). Otherwise it requests a run.
    """

    job_name: str
    """Name of the asset job; the schedule is named `<job_name>_schedule`."""

    cron_schedule: Cron
    """When the job runs, e.g. `0 * * * *` for hourly."""

    asset_selection: str
    """Dagster selection string, e.g. `tag:dagster/materialization=table`."""

    skip_reason_prefix: str = "Skipping scheduled run"
    """Text the skip reason starts with, so a skipped tick is easy to recognise in the UI."""

    timezone: Timezone = "UTC"
    """IANA timezone the cron schedule is read in."""

    def asset_selections(self) -> dict[str, str]:
        """Checked against every component's assets once all are built (`defs_checks.py`)."""
        return {"asset_selection": self.asset_selection}

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        job = dg.define_asset_job(
            name=self.job_name,
            selection=dg.AssetSelection.from_string(self.asset_selection),
        )

        def evaluate_tick(
            context: dg.ScheduleEvaluationContext,
        ) -> dg.RunRequest | dg.SkipReason:
            repository = context.repository_def

            def keys_of_job(name: str) -> set[dg.AssetKey]:
                if not repository.has_job(name):
                    return set()  # a job of another code location
                return set(repository.get_job(name).asset_layer.selected_asset_keys)

            blocking = find_blocking_run(
                context.instance, self.job_name, keys_of_job(self.job_name), keys_of_job
            )
            if blocking is not None:
                _, why = blocking
                return dg.SkipReason(f"{self.skip_reason_prefix}: {why}")
            return dg.RunRequest()

        schedule = dg.ScheduleDefinition(
            name=f"{self.job_name}_schedule",
            job=job,
            cron_schedule=self.cron_schedule,
            execution_timezone=self.timezone,
            execution_fn=evaluate_tick,
        )
        return dg.Definitions(jobs=[job], schedules=[schedule])
