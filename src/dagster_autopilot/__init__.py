"""dagster_autopilot: Dagster components that keep every asset fresh by itself."""

from dagster_autopilot.components import (
    AutomationSensorComponent,
    CustomDbtComponent,
    EmbeddingComponent,
    LandingFilesComponent,
    SafeScheduledJobComponent,
    VectorMatchComponent,
)

__all__ = [
    "AutomationSensorComponent",
    "CustomDbtComponent",
    "EmbeddingComponent",
    "LandingFilesComponent",
    "SafeScheduledJobComponent",
    "VectorMatchComponent",
]
