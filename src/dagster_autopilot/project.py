"""Loading a project's definitions: every component of its `defs/` folder, checked together.

A project's code location is then one function (see `src/autopilot_deployment/definitions.py`):

    @dg.definitions
    def defs() -> dg.Definitions:
        return load_project_defs(Path(__file__).parent)
"""

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


def load_checked_defs(path_within_project: Path) -> dg.Definitions:
    """The components of the project that holds `path_within_project`, built, then checked
    together (`components/checks.py`: references to assets nothing defines, names defined twice)."""
    tree = dg.ComponentTree.for_project(path_within_project=path_within_project)
    built = tree.build_defs()
    check_component_tree(tree)
    return built


def load_project_defs(path_within_project: Path) -> dg.Definitions:
    """What a project's `@dg.definitions` function returns: its checked components, built once
    per `dg` command or code server start."""
    return reuse_initialized_defs(lambda: load_checked_defs(path_within_project))
