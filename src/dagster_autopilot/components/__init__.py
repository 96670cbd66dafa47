"""The YAML-facing component classes. Each only translates its fields into Dagster objects."""

from dagster_autopilot.components.automation_sensor import AutomationSensorComponent
from dagster_autopilot.components.dbt_project import CustomDbtComponent
from dagster_autopilot.components.safe_scheduled_job import SafeScheduledJobComponent

__all__ = [
    "AutomationSensorComponent",
    "CustomDbtComponent",
    "SafeScheduledJobComponent",
]
