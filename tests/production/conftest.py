"""Fixtures for the production path: a real PostgreSQL 15, and a real Chromium.

Tests that need one of them skip on a machine without it, and fail under `CI=true`, where `.ci/run`
installs and starts both.
"""

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg2
import pytest
from deployment import Deployment, prepare, settle, start_services
from harness import REPO_ROOT

POSTGRES_SETUP = REPO_ROOT / ".ci" / "postgres-setup"


def require(condition: object, why: str) -> None:
    """Skips the test when `condition` is false, or fails it under `CI=true`."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required under CI=true: {why}", pytrace=False)
    pytest.skip(why)


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL login that may create databases."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    def connect(self, dbname: str | None = None):
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.dbname,
            connect_timeout=5,
        )

    def fetch_all(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        """Runs one query on its own connection and returns its rows."""
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetchall()
        finally:
            connection.close()

    def dagster_env(self) -> dict[str, str]:
        """The variables `deploy/dagster.yaml` reads, for Dagster's own storage in `dbname`."""
        return {
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.dbname,
        }

    def dbt_env(self, schema: str = "analytics") -> dict[str, str]:
        """The variables the dbt `postgres` target reads, for a warehouse in `dbname`."""
        return {
            "DBT_TARGET": "postgres",
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_DB": self.dbname,
            "POSTGRES_SCHEMA": schema,
        }


def _from_environment() -> Postgres | None:
    user = os.environ.get("AUTOPILOT_TEST_PG_USER")
    password = os.environ.get("AUTOPILOT_TEST_PG_PASSWORD")
    if not (user and password):
        return None
    return Postgres(
        host=os.environ.get("AUTOPILOT_TEST_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("AUTOPILOT_TEST_PG_PORT", "5432")),
        user=user,
        password=password,
        dbname=os.environ.get("AUTOPILOT_TEST_PG_DB", "autopilot_test"),
    )


def _set_up_local_cluster() -> tuple[Postgres | None, str]:
    """As root on Debian: start the local cluster as `.ci/run` does, with a role of this session's
    own (so no other session's password changes), dropped by `_drop_role` at the end."""
    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster"):
        return None, "not root, or no Debian PostgreSQL (pg_ctlcluster) on this machine"
    name = f"autopilot_t_{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    result = subprocess.run(
        ["bash", str(POSTGRES_SETUP)],
        env={
            **os.environ,
            "AUTOPILOT_TEST_PG_USER": name,
            "AUTOPILOT_TEST_PG_DB": name,
            "AUTOPILOT_TEST_PG_PASSWORD": password,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        return None, f".ci/postgres-setup failed: {result.stdout}{result.stderr}"
    return Postgres("127.0.0.1", 5432, name, password, name), ""


def _drop_role(name: str) -> None:
    statements = f'drop database if exists "{name}" with (force); drop role if exists "{name}";'
    for statement in statements.split("; "):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-c", statement],
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The test login: from AUTOPILOT_TEST_PG_* (set by `.ci/run`), or set up here as root."""
    server = _from_environment()
    own_role = False
    why = "AUTOPILOT_TEST_PG_USER and AUTOPILOT_TEST_PG_PASSWORD are not set"
    if server is None:
        server, why = _set_up_local_cluster()
        own_role = server is not None
    require(server is not None, f"no PostgreSQL for the production tests: {why}")
    try:
        connection = server.connect()
        with connection.cursor() as cursor:
            cursor.execute("show server_version_num")
            (version,) = cursor.fetchone()
        connection.close()
    except psycopg2.Error as error:
        require(False, f"cannot connect to PostgreSQL as {server.user}: {error}")
    require(int(version) // 10000 >= 15, f"PostgreSQL 15 or later required, found {version}")
    yield server
    if own_role:
        _drop_role(server.user)


@pytest.fixture(scope="session")
def fresh_database(postgres: Postgres):
    """Makes empty databases, each named after its purpose, dropped at the end of the session."""
    created: list[str] = []

    def make(purpose: str) -> Postgres:
        name = f"autopilot_t_{secrets.token_hex(4)}_{purpose}"
        _admin(postgres, f'create database "{name}"')
        created.append(name)
        return replace(postgres, dbname=name)

    yield make
    for name in created:
        _admin(postgres, f'drop database if exists "{name}" with (force)')


def _admin(postgres: Postgres, statement: str) -> None:
    connection = postgres.connect()
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@pytest.fixture(scope="session")
def deployment(postgres: Postgres, fresh_database, tmp_path_factory: pytest.TempPathFactory):
    """`dagster-daemon` and `dagster-webserver`, running on a fresh Dagster database and a fresh
    PostgreSQL warehouse. Stopped at the end of the session by SIGTERM; a service that TERM does
    not stop, or a code server left behind, fails the session."""
    dagster_db = fresh_database("dagster")
    warehouse = fresh_database("warehouse")
    prepared = prepare(
        tmp_path_factory.mktemp("deployment"),
        dagster_db=dagster_db.dagster_env(),
        warehouse=warehouse.dbt_env(schema="analytics"),
    )
    prepared.warehouse = warehouse
    try:
        start_services(prepared)
    except BaseException:
        results = prepared.stop(timeout=30)
        print(*(f"{s.name}:\n{s.tail()}" for s in prepared.services.values()), sep="\n")
        print(results)
        raise
    yield prepared
    results = prepared.stop()
    for result in results:
        print(f"stopped {result}")
    problems = [
        f"{r.name}: exited by itself (code {r.returncode}) before the end of the session"
        if r.exited_before_stop
        else f"{r.name}: SIGTERM did not stop it within the timeout (killed)"
        for r in results
        if not r.stopped_by_term
    ] + [
        f"{r.name}: children {r.leftover_children} outlived it (killed)"
        for r in results
        if r.leftover_children
    ]
    assert not problems, problems


@pytest.fixture(scope="session")
def settled(deployment: Deployment) -> set[str]:
    """The deployment once the sensor has built every missing seed and view (the seeds and views)."""
    return settle(deployment)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium (`apt-get install chromium`), or CHROMIUM_PATH."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    require(path and Path(path).exists(), "no Chromium: apt-get install -y chromium")
    return Path(path)


@pytest.fixture
def artifacts_dir() -> Iterator[Path]:
    """`artifacts/` at the repository root (gitignored): screenshots a person can look at."""
    directory = REPO_ROOT / "artifacts"
    directory.mkdir(exist_ok=True)
    yield directory
