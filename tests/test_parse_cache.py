"""`dbt parse` is skipped when nothing it reads changed, and never when something did."""

from pathlib import Path

import pytest
from harness import copy_project, load_defs

from dagster_autopilot.dbt_parse_cache import project_fingerprint


def _manifest(root: Path) -> Path:
    (manifest,) = (root / "defs" / ".local_defs_state").glob("*/project/target/manifest.json")
    return manifest


def _description(root: Path, key: str) -> str:
    defs = load_defs(root)
    (spec,) = [s for a in defs.assets for s in a.specs if s.key.to_user_string() == key]
    return spec.description


def test_unchanged_project_is_not_parsed_again_and_edits_are_seen(tmp_path: Path):
    root = copy_project(tmp_path / "project")
    load_defs(root)
    parsed_at = _manifest(root).stat().st_mtime_ns

    load_defs(root)
    assert _manifest(root).stat().st_mtime_ns == parsed_at, "nothing changed: no parse"

    schema = root / "analytics_dbt" / "models" / "staging" / "schema.yml"
    schema.write_text(schema.read_text().replace("One row per order", "Exactly one row per order", 1))
    assert _description(root, "stg_orders").startswith("Exactly one row per order")
    assert _manifest(root).stat().st_mtime_ns != parsed_at


def test_fingerprint_follows_files_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project = copy_project(tmp_path / "project") / "analytics_dbt"
    before = project_fingerprint(project)
    (project / "target").mkdir(exist_ok=True)
    (project / "target" / "run_results.json").write_text("{}")
    assert project_fingerprint(project) == before, "build output is not a source"

    macro = project / "macros" / "clean_text.sql"
    macro.write_text(macro.read_text() + "\n")
    after_macro = project_fingerprint(project)
    assert after_macro != before

    monkeypatch.setenv("DBT_TARGET", "postgres")
    assert project_fingerprint(project) != after_macro, "the target changes what is parsed"
