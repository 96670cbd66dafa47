"""The YAML-facing component classes. Each only translates its fields into Dagster objects."""

from dagster_autopilot.components.automation_sensor import AutomationSensorComponent
from dagster_autopilot.components.dbt_project import CustomDbtComponent
from dagster_autopilot.components.embedding import EmbeddingComponent
from dagster_autopilot.components.landing_files import LandingFilesComponent
from dagster_autopilot.components.safe_scheduled_job import SafeScheduledJobComponent
from dagster_autopilot.components.vector_match import VectorMatchComponent

__all__ = [
    "AutomationSensorComponent",
    "CustomDbtComponent",
    "EmbeddingComponent",
    "LandingFilesComponent",
    "SafeScheduledJobComponent",
    "VectorMatchComponent",
]
