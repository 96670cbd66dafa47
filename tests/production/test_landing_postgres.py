"""The landing ingestion tests of `tests/test_landing.py`, on PostgreSQL: the same tests, with the
`warehouse` fixture pointed at a fresh PostgreSQL database."""

import pytest
from test_landing import (  # noqa: F401 (collected here, on PostgreSQL)
    test_a_crash_after_a_chunk_resumes_there_without_duplicates,
    test_a_good_file_lands_beside_an_unreadable_one_which_is_rejected_once,
    test_each_file_and_record_is_landed_once_and_bad_rows_are_counted,
)

from dagster_autopilot.warehouse.connection import Warehouse


@pytest.fixture
def warehouse(fresh_database, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    database = fresh_database("landing")
    for name, value in database.dbt_env(schema="landing").items():
        monkeypatch.setenv(name, value)
    warehouse = Warehouse.from_env()
    assert warehouse.kind == "postgres"
    return warehouse
