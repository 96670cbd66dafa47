"""`load_project_defs`: a project's definitions built once per `dg` command or code server.

Dagster loads a code location twice in one process (initialization, then reconstruction from the
same state); the second load takes the first one's definitions instead of building again.
"""

import dagster as dg
import pytest

from dagster_autopilot._dagster_internals import DefinitionsLoadContext, DefinitionsLoadType
from dagster_autopilot.project import reuse_initialized_defs


@pytest.fixture
def load_as():
    previous = DefinitionsLoadContext._instance

    def set_load_type(load_type: DefinitionsLoadType) -> None:
        DefinitionsLoadContext.set(DefinitionsLoadContext(load_type=load_type))

    yield set_load_type
    DefinitionsLoadContext.set(previous)


def test_a_reconstruction_right_after_an_initialization_reuses_its_definitions(load_as):
    builds: list[dg.Definitions] = []

    def build() -> dg.Definitions:
        builds.append(dg.Definitions())
        return builds[-1]

    load_as(DefinitionsLoadType.INITIALIZATION)
    initialized = reuse_initialized_defs(build)
    load_as(DefinitionsLoadType.RECONSTRUCTION)
    assert reuse_initialized_defs(build) is initialized
    assert len(builds) == 1
    # Any later load builds again: the files may have changed since.
    assert reuse_initialized_defs(build) is not initialized
    assert len(builds) == 2
