"""A dbt asset's code reference (the UI's "open in editor" link) is the file in the user's dbt project.

dagster-dbt links each node to the copy of the project it prepares the state from: a file that the
next `dbt parse` overwrites and that `dg dev` does not watch, so an edit made there is lost.
"""

from pathlib import Path

import dagster as dg

CODE_REFERENCES = "dagster/code_references"


def _model_files(node) -> list[Path]:
    references = node.metadata[CODE_REFERENCES].code_references
    return [
        Path(reference.file_path)
        for reference in references
        if isinstance(reference, dg.LocalFileCodeReference)
        and not reference.file_path.endswith("defs.yaml")
    ]


def test_every_dbt_asset_links_to_its_file_in_the_dbt_project(project_root, project_defs):
    dbt_project = (project_root / "analytics_dbt").resolve()
    graph = project_defs.resolve_asset_graph()
    linked = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if "dagster_dbt/unique_id" not in node.metadata:
            continue
        (path,) = _model_files(node)
        linked[key.to_user_string()] = path
        assert path.is_file(), path
        assert path.is_relative_to(dbt_project), path
        assert ".local_defs_state" not in path.parts, path
    assert len(linked) >= 10
    assert linked["stg_orders"] == dbt_project / "models" / "staging" / "stg_orders.sql"
