"""`deploy/dagster.yaml` as Dagster reads it: PostgreSQL storage from the environment only, and a
run queue that never runs two dbt runs of one project at once. No server needed."""

import shutil
from pathlib import Path

import pytest
import sqlalchemy
import yaml
from dagster._config import process_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRun
from dagster._utils.tags import TagConcurrencyLimitsCounter
from dagster_postgres.storage import DagsterPostgresStorage
from dagster_postgres.utils import pg_url_from_config
from harness import REPO_ROOT

from dagster_autopilot.runs.launcher import PreloadedRunLauncher

DAGSTER_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
SECRET_ENV = {
    "DAGSTER_PG_USERNAME": "dagster_user",
    "DAGSTER_PG_PASSWORD": "from-the-environment",
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_PORT": "6543",
}


@pytest.fixture
def instance_ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InstanceRef:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    shutil.copy2(DAGSTER_YAML, tmp_path / "dagster.yaml")
    return InstanceRef.from_dir(str(tmp_path))


def test_every_credential_comes_from_the_environment():
    postgres_db = yaml.safe_load(DAGSTER_YAML.read_text())["storage"]["postgres"]["postgres_db"]
    for field in ("username", "password", "hostname", "db_name", "port"):
        assert set(postgres_db[field]) == {"env"}, field
        assert postgres_db[field]["env"].startswith("DAGSTER_PG_")


def test_storage_is_postgres_through_psycopg2(instance_ref: InstanceRef):
    storage = instance_ref.storage_data
    assert (storage.module_name, storage.class_name) == ("dagster_postgres", "DagsterPostgresStorage")
    config = process_config(DagsterPostgresStorage.config_type(), yaml.safe_load(storage.config_yaml))
    assert config.success, config.errors
    url = pg_url_from_config(config.value)
    assert url == "postgresql+psycopg2://dagster_user:from-the-environment@db.internal:6543/dagster"
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed.
    assert sqlalchemy.create_engine(url).dialect.driver == "psycopg2"


def _run(**tags: str) -> DagsterRun:
    return DagsterRun(job_name="__ASSET_JOB", tags=tags)


def test_one_run_at_a_time_per_dbt_project_and_two_embedding_runs(instance_ref: InstanceRef):
    coordinator = instance_ref.run_coordinator
    assert type(coordinator).__name__ == "QueuedRunCoordinator"
    limits = coordinator.get_run_queue_config().tag_concurrency_limits

    analytics = _run(**{"autopilot/dbt_project": "analytics"})
    finance = _run(**{"autopilot/dbt_project": "finance"})
    counter = TagConcurrencyLimitsCounter(limits, [analytics])
    assert counter.is_blocked(_run(**{"autopilot/dbt_project": "analytics"}))
    assert not counter.is_blocked(finance), "each dbt project has its own limit"
    assert not counter.is_blocked(_run()), "runs of no dbt project are not limited"

    embedding = _run(**{"autopilot/kind": "embedding"})
    assert not TagConcurrencyLimitsCounter(limits, [embedding]).is_blocked(embedding)
    assert TagConcurrencyLimitsCounter(limits, [embedding, embedding]).is_blocked(embedding)
    assert not TagConcurrencyLimitsCounter(limits, [embedding, embedding]).is_blocked(analytics)


def test_run_monitoring_and_no_prompt(instance_ref: InstanceRef):
    assert instance_ref.settings["run_monitoring"]["enabled"] is True
    # A run whose worker is gone (after a daemon restart, when no launcher watches the worker) is
    # failed at the next monitoring pass: well within 2 minutes, not after the default 120 s.
    assert instance_ref.settings["run_monitoring"]["poll_interval_seconds"] <= 60
    # A worker that dies before its run starts leaves it STARTING: failed after the start timeout,
    # at the next pass after it, also within 2 minutes.
    monitoring = instance_ref.settings["run_monitoring"]
    assert monitoring["start_timeout_seconds"] + monitoring["poll_interval_seconds"] <= 120
    assert instance_ref.settings["nux"] == {"enabled": False}
    assert instance_ref.settings["telemetry"] == {"enabled": False}


def test_runs_are_forked_from_a_process_that_preloaded_the_code_location(instance_ref: InstanceRef):
    launcher = instance_ref.run_launcher
    assert isinstance(launcher, PreloadedRunLauncher)
    # The module `deploy/workspace.yaml` loads, so a run finds its definitions already imported.
    workspace = yaml.safe_load((REPO_ROOT / "deploy" / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert module in launcher.preload_modules
