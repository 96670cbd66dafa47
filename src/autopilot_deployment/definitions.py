"""The entry point `dg` loads: every component declared in the project's top-level `defs/` folder."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from dagster_autopilot._dagster_internals import DefinitionsLoadContext, DefinitionsLoadType
from dagster_autopilot.components.checks import check_component_tree

# The definitions of this process's last initialization, until a reconstruction takes them.
_initialized: list[dg.Definitions] = []


def reuse_initialized_defs(build: Callable[[], dg.Definitions]) -> dg.Definitions:
    """`build()`, except that a reconstruction right after an initialization reuses its result.

    Every `dg` command and code server loads the definitions twice in one process: once to find
    them (initialization: state is refreshed, e.g. a dbt parse), then again to reconstruct them
    from that same state. The second build costs as much as the first (seconds at 1,000 dbt
    models) and yields the same definitions. Any later load builds again.
    """
    load_type = DefinitionsLoadContext.get().load_type
    if load_type == DefinitionsLoadType.RECONSTRUCTION and _initialized:
        return _initialized.pop()
    _initialized.clear()
    built = build()
    if load_type == DefinitionsLoadType.INITIALIZATION:
        _initialized.append(built)
    return built


def load_checked_defs() -> dg.Definitions:
    """`dg.load_from_defs_folder`, then the checks across components (`components/checks.py`).

    `src/autopilot_deployment/defs` is a symlink to the top-level `defs/`, so `dg` finds the YAML
    where it looks for it and users edit it at the top of the repository.
    """
    tree = dg.ComponentTree.for_project(path_within_project=Path(__file__).parent)
    built = tree.build_defs()
    check_component_tree(tree)
    return built


@dg.definitions
def defs() -> dg.Definitions:
    return reuse_initialized_defs(load_checked_defs)
