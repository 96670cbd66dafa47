"""The entry point `dg` loads: every component declared in the project's top-level `defs/` folder."""

from pathlib import Path

import dagster as dg

from dagster_autopilot.warehouse import use_project_warehouse_by_default

# `src/dagster_autopilot/defs` is a symlink to the top-level `defs/`, so `dg` finds the YAML where it
# looks for it and users edit it at the top of the repository.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

use_project_warehouse_by_default(PROJECT_ROOT)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
