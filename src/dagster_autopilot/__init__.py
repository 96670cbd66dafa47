"""dagster_autopilot: Dagster components that keep every asset fresh by itself.

The components are imported when first asked for (PEP 562), so that `dagster_autopilot.vectors`,
the matching kernel and the embedders, can be imported without importing Dagster and dbt.
`dg` finds the components through `dir()` of this module, as it finds any attribute.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("dagster_autopilot.components"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
