"""dagster_autopilot: Dagster components that keep every asset fresh by themselves.

Each component is imported when first asked for (PEP 562), from its own module, so that
`dagster_autopilot.vectors` (the matching kernel and the embedders) imports without Dagster and dbt,
and a code location that declares only dbt does not import the embedding and matching stack.
`dg` finds the components through `dir()` of this module, as it finds any attribute.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `X as X`: re-exported, for type checkers and editors
    from dagster_autopilot.components.automation_sensor import (
        AutomationSensorComponent as AutomationSensorComponent,
    )
    from dagster_autopilot.components.dbt_project import CustomDbtComponent as CustomDbtComponent
    from dagster_autopilot.components.embedding import EmbeddingComponent as EmbeddingComponent
    from dagster_autopilot.components.landing_files import LandingFilesComponent as LandingFilesComponent
    from dagster_autopilot.components.safe_scheduled_job import (
        SafeScheduledJobComponent as SafeScheduledJobComponent,
    )
    from dagster_autopilot.components.vector_match import VectorMatchComponent as VectorMatchComponent

# Where each component lives: `__getattr__` imports that module only.
_MODULE_OF = {
    "AutomationSensorComponent": "dagster_autopilot.components.automation_sensor",
    "CustomDbtComponent": "dagster_autopilot.components.dbt_project",
    "EmbeddingComponent": "dagster_autopilot.components.embedding",
    "LandingFilesComponent": "dagster_autopilot.components.landing_files",
    "SafeScheduledJobComponent": "dagster_autopilot.components.safe_scheduled_job",
    "VectorMatchComponent": "dagster_autopilot.components.vector_match",
}

__all__ = list(_MODULE_OF)

# The Python API's functions, imported the same way; not in `__all__`, which lists the components.
_FUNCTION_MODULE_OF = {
    "explain": "dagster_autopilot.automation.explain",
    "plan": "dagster_autopilot.automation.plan",
}


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    if name in _FUNCTION_MODULE_OF:
        return getattr(importlib.import_module(_FUNCTION_MODULE_OF[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
