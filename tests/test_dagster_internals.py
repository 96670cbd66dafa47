"""The private Dagster names the library uses (`_dagster_internals.py`) exist in the installed
Dagster, and the installed versions are the ones that module was written against.

A Dagster upgrade that moves or renames one of them fails here, with the name, rather than deep in
a tick or a `dg` command.
"""

import functools
import tomllib
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import pytest
from dagster_dbt import DbtProjectComponent
from dagster_dbt.dbt_project import DagsterDbtProjectPreparer
from dagster_dbt.dbt_project_manager import DbtProjectManager
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation.apply import policy_attributes

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _pinned(package: str) -> SpecifierSet:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return next(Requirement(d).specifier for d in dependencies if Requirement(d).name == package)


@pytest.mark.parametrize(
    ("package", "supported"),
    [("dagster", internals.SUPPORTED_DAGSTER), ("dagster-dbt", internals.SUPPORTED_DAGSTER_DBT)],
)
def test_the_installed_version_is_the_one_the_internals_were_written_against(package, supported):
    assert _pinned(package) == SpecifierSet(supported), (
        f"pyproject.toml pins {package} {_pinned(package)}, _dagster_internals.py was checked "
        f"against {supported}: recheck every name there, then move both together"
    )
    assert version(package) in SpecifierSet(supported)


@pytest.mark.parametrize("name", sorted(internals._PRIVATE_NAMES))
def test_every_private_name_resolves(name):
    assert getattr(internals, name) is not None


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        internals.no_such_name  # noqa: B018


def test_the_private_members_used_exist():
    sensor = dg.AutomationConditionSensorDefinition("s", target=dg.AssetSelection.all())
    arguments = internals.sensor_constructor_arguments(sensor)
    assert set(arguments) == {"target", "tags", "run_tags", "metadata", "emit_backfills"}
    internals.set_sensor_evaluation(sensor, lambda context: None)
    assert sensor._raw_fn is not None and sensor._evaluation_fn is not None
    assert isinstance(DbtProjectComponent._project_manager, property | functools.cached_property)
    assert callable(DbtProjectManager._local_project_dir)
    preparer = DagsterDbtProjectPreparer()
    assert internals.dbt_prepare_cli_args(preparer) == ["parse", "--quiet"]
    assert callable(preparer._invalidate_seeds_in_partial_parse)


def test_a_shared_condition_is_snapshotted_once_as_dagster_snapshots_it():
    def condition() -> dg.AutomationCondition:
        return (dg.AutomationCondition.eager() & ~dg.AutomationCondition.in_progress()).with_label(
            "shared"
        )

    expected = condition()
    shared = internals.snapshot_once(condition())

    first = shared.get_snapshot()
    assert first == expected.get_snapshot()
    assert shared.get_snapshot() is first
    # Inside another tree it snapshots with that tree's ids, as Dagster does.
    assert (shared | dg.AutomationCondition.missing()).get_snapshot() == (
        expected | dg.AutomationCondition.missing()
    ).get_snapshot()
    assert shared == expected and hash(shared) == hash(expected)


def test_the_condition_a_policy_puts_on_its_assets_is_snapshotted_once():
    condition = policy_attributes({"cron": "0 6 * * *"}).automation_condition
    assert condition is not None
    assert condition.get_snapshot() is condition.get_snapshot()
