"""The package imports a component only when it is asked for, each from its own module.

Checked in a fresh interpreter, since this test process has imported everything already.
"""

import subprocess
import sys

import dagster as dg
import pytest

import dagster_autopilot


def _modules_imported_by(statement: str) -> set[str]:
    listing = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_the_matching_kernel_imports_without_dagster_or_dbt():
    modules = _modules_imported_by("import dagster_autopilot.vectors.matching")

    assert "dagster_autopilot.vectors.matching" in modules
    assert "dagster" not in modules
    assert "dbt" not in modules


def test_a_dbt_only_code_location_does_not_import_the_other_components():
    modules = _modules_imported_by("from dagster_autopilot import CustomDbtComponent")

    assert "dagster_autopilot.components.dbt_project" in modules
    assert "dagster_autopilot.components.embedding" not in modules
    assert "dagster_autopilot.components.vector_match" not in modules
    assert "dagster_autopilot.vectors.matching" not in modules


def test_dg_finds_every_component_through_the_package():
    names = [name for name in dir(dagster_autopilot) if name.endswith("Component")]

    assert names == sorted(dagster_autopilot.__all__)
    assert len(names) == 6
    for name in names:
        component = getattr(dagster_autopilot, name)
        assert component.__name__ == name
        assert issubclass(component, dg.Component)
    with pytest.raises(AttributeError, match="NoSuchComponent"):
        _ = dagster_autopilot.NoSuchComponent
