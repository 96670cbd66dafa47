"""Every asset builds on PostgreSQL through the project's real definitions, and every dbt test
passes as an asset check: the `postgres` target is the production warehouse, for the dbt models
and for the Python assets (landed records, vectors as `real[]`, matches) alike."""

import threading
import time

import dagster as dg
import pytest
from harness import build_everything_with_dbt

from dagster_autopilot.pipelines.landing import LEDGER_COLUMNS, LEDGER_TABLE
from dagster_autopilot.warehouse.connection import Warehouse


def test_all_assets_materialize_and_checks_pass_on_postgres(
    project_defs: dg.Definitions, fresh_database, monkeypatch: pytest.MonkeyPatch
):
    warehouse = fresh_database("warehouse")
    for name, value in warehouse.dbt_env(schema="analytics").items():
        monkeypatch.setenv(name, value)

    build_everything_with_dbt(project_defs)

    # The data is in PostgreSQL, in the configured schema, with the right kind of relation.
    connection = warehouse.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("select count(*) from analytics.customer_orders")
            assert cursor.fetchone() == (200,)
            cursor.execute(
                "select udt_name, count(*) from information_schema.columns"
                " where table_schema = 'analytics' and column_name = 'embedding' group by 1"
            )
            assert cursor.fetchall() == [("_float4", 2)], "both vectors tables hold real[]"
            cursor.execute(
                "select count(*), count(distinct candidate_id), min(array_length(e.embedding, 1))"
                " from analytics.matches join analytics.candidate_vectors e using (candidate_id)"
            )
            pairs, candidates, width = cursor.fetchone()
            assert (candidates, width) == (200, 384)
            assert pairs > 5 * candidates, "the sample's candidates have their best jobs"
            cursor.execute(
                "select table_name, table_type from information_schema.tables"
                " where table_schema = 'analytics'"
            )
            relations = dict(cursor.fetchall())
    finally:
        connection.close()
    assert relations == {
        "raw_customers": "BASE TABLE",
        "raw_orders": "BASE TABLE",
        "stg_customers": "VIEW",
        "stg_orders": "VIEW",
        "customer_orders": "BASE TABLE",
        "order_summary": "BASE TABLE",
        "customer_segments": "BASE TABLE",
        "daily_revenue": "BASE TABLE",
        "raw_candidates": "BASE TABLE",
        "raw_candidates_quarantine": "BASE TABLE",
        "raw_jobs": "BASE TABLE",
        "raw_jobs_quarantine": "BASE TABLE",
        "autopilot_arrivals": "BASE TABLE",
        "normalized_candidates": "BASE TABLE",
        "normalized_jobs": "BASE TABLE",
        "candidate_vectors": "BASE TABLE",
        "job_vectors": "BASE TABLE",
        "matches": "BASE TABLE",
        "matches_inputs": "BASE TABLE",
    }


def test_two_steps_creating_the_same_table_at_once_both_succeed(
    fresh_database, monkeypatch: pytest.MonkeyPatch
):
    """On a fresh warehouse the steps landing candidates and jobs both create the shared arrivals
    ledger. A plain `create table if not exists` fails the second one on the catalog's unique index
    (it did, in CI, failing `land_raw_jobs`)."""
    warehouse_db = fresh_database("concurrent_create")
    for name, value in warehouse_db.dbt_env(schema="landing").items():
        monkeypatch.setenv(name, value)
    warehouse = Warehouse.from_env()
    first_created = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with warehouse.connect() as session:
            session.create_table(LEDGER_TABLE, LEDGER_COLUMNS)
            first_created.set()
            time.sleep(1.0)  # uncommitted while the second creates

    def second() -> None:
        first_created.wait(timeout=30)
        with warehouse.connect() as session:
            session.create_table(LEDGER_TABLE, LEDGER_COLUMNS)
            assert session.table_exists(LEDGER_TABLE)

    def recording(step):
        def run() -> None:
            try:
                step()
            except BaseException as error:  # re-raised below, in the test's thread
                errors.append(error)

        return threading.Thread(target=run)

    threads = [recording(first), recording(second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
