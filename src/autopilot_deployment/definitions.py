"""The entry point `dg` loads: every component declared in the project's top-level `defs/` folder.

`src/autopilot_deployment/defs` is a symlink to the top-level `defs/`, so `dg` finds the YAML where
it looks for it and users edit it at the top of the repository.
"""

from pathlib import Path

import dagster as dg

from dagster_autopilot.project import load_project_defs


@dg.definitions
def defs() -> dg.Definitions:
    return load_project_defs(Path(__file__).parent)
