"""The dbt materialization metadata tests of `tests/test_materialization_metadata.py` that read
the warehouse, on the PostgreSQL target: the same tests, with the `built` fixture building the
project on a fresh PostgreSQL warehouse."""

import pytest
from dbt_metadata import built_project
from test_materialization_metadata import (  # noqa: F401 (collected here, on PostgreSQL)
    test_a_run_whose_dbt_command_fails_records_what_it_built_with_its_metadata,
    test_a_select_star_model_has_its_parents_columns_and_lineage,
    test_a_view_has_columns_and_lineage_but_no_row_count,
    test_an_automation_run_says_why_it_was_requested,
    test_an_incremental_model_on_its_first_and_incremental_runs,
    test_an_undocumented_column_is_shown_with_its_type,
    test_columns_and_types_come_from_the_warehouse,
    test_lineage_runs_through_the_marts_to_the_view,
    test_the_lineage_table_traces_each_column_back_through_the_ancestors,
)


@pytest.fixture(scope="module")
def built(fresh_database, tmp_path_factory: pytest.TempPathFactory):
    warehouse = fresh_database("metadata")
    tmp = tmp_path_factory.mktemp("metadata_pg")
    with built_project(tmp, "postgres", warehouse.dbt_env(schema="analytics")) as state:
        yield state
