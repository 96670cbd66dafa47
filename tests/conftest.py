from pathlib import Path

import dagster as dg
import pytest
from harness import MONDAY_1AM, Ticker, shipped_defs, shipped_project


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "policy_field(name): the test ticks a policy whose field `name` is loaded from YAML "
        "(test_policy_fields checks that every AutomationPolicy field has one)",
    )


# The longest groups of tests (minutes each), handed out first so that the workers finish close
# together: xdist hands out groups in collection order (`--no-loadscope-reorder` in pyproject.toml).
LONGEST_GROUPS_FIRST = ("production", "test_equivalence_day.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # pytest-xdist (`-n`, see pyproject.toml) hands each group of tests to one worker. The
    # production tests share one PostgreSQL database and one deployment (session fixtures), so they
    # form one group; every other test file is a group of its own, so that its module fixtures
    # (a dbt build, a batch of `dg check defs`) run once.
    groups = {}
    for item in items:
        production = "production" in item.path.relative_to(config.rootpath).parts
        groups[item] = "production" if production else item.path.name
        item.add_marker(pytest.mark.xdist_group(groups[item]))
    rank = {group: index for index, group in enumerate(LONGEST_GROUPS_FIRST)}
    items.sort(key=lambda item: rank.get(groups[item], len(rank)))


@pytest.fixture(autouse=True)
def _warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Every test gets its own DuckDB file; dbt reads the path from the environment.
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("AUTOPILOT_DUCKDB_PATH", str(path))
    return path


@pytest.fixture(scope="session")
def project_root() -> Path:
    """A copy of the project shared by the tests that do not edit it."""
    return shipped_project()


@pytest.fixture(scope="session")
def project_defs(project_root: Path) -> dg.Definitions:
    """The definitions of `project_root`; the harness's asset sets are read from the same load."""
    return shipped_defs()


@pytest.fixture
def ticker(project_defs: dg.Definitions) -> Ticker:
    """Ticks against the real definitions on a fresh instance, starting Monday 01:00 UTC."""
    with dg.instance_for_test() as instance:
        yield Ticker(project_defs, instance, MONDAY_1AM)
