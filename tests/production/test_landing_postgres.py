"""The landing tests of `tests/test_landing.py` that write to the warehouse, on PostgreSQL: the
same tests, with the `warehouse` fixture pointed at a fresh PostgreSQL database. The sensor tests'
runs write where the `warehouse` resource reads the environment, which the fixture points there
too."""

import pytest
from harness import (  # noqa: F401 (the sensor tests' fixtures)
    arrivals_fixture,
    clock_fixture,
    configured_arrivals_fixture,
)
from test_landing import (  # noqa: F401 (collected here, on PostgreSQL)
    test_a_crash_after_a_chunk_resumes_there_without_duplicates,
    test_a_crash_resumes_exactly_even_when_the_chunk_size_changed,
    test_a_csv_without_optional_columns_lands_nulls_and_a_cr_only_file_is_rejected,
    test_a_failed_landing_run_is_requested_again_after_a_backoff,
    test_a_file_is_requested_only_once_its_done_marker_exists,
    test_a_file_is_requested_only_once_settle_seconds_old,
    test_a_file_renamed_from_its_tmp_name_is_requested_even_with_an_old_mtime,
    test_a_file_still_being_written_lands_once_complete,
    test_a_good_file_lands_beside_an_unreadable_one_which_is_rejected_once,
    test_a_landing_run_with_a_bad_file_succeeds_and_reports_it,
    test_a_rewrite_keeping_size_and_mtime_is_seen,
    test_an_unexpected_error_while_reading_names_the_file,
    test_each_file_and_record_is_landed_once_and_bad_rows_are_counted,
    test_every_line_of_a_csv_with_stray_or_unclosed_quotes_lands_or_is_quarantined,
    test_files_are_requested_only_once_the_success_marker_follows_them,
    test_no_landing_run_is_requested_while_one_is_in_progress,
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
