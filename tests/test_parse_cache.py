"""`dbt parse` is skipped when nothing it reads changed, and never when something did."""

import subprocess
import threading
import time
from pathlib import Path

import pytest
from dagster_dbt import DbtProject
from harness import copy_project, load_defs

from dagster_autopilot.dbt import parse_cache as dbt_parse_cache
from dagster_autopilot.dbt.compiled import compile_models
from dagster_autopilot.dbt.parse_cache import project_fingerprint


def _manifest(root: Path) -> Path:
    (manifest,) = (root / "defs" / ".local_defs_state").glob("*/project/target/manifest.json")
    return manifest


def _specs(root: Path) -> dict:
    return {s.key.to_user_string(): s for a in load_defs(root).assets for s in a.specs}


def test_unchanged_project_is_not_parsed_again_and_edits_are_seen(tmp_path: Path):
    root = copy_project(tmp_path / "project")
    load_defs(root)
    parsed_at = _manifest(root).stat().st_mtime_ns

    load_defs(root)
    assert _manifest(root).stat().st_mtime_ns == parsed_at, "nothing changed: no parse"

    schema = root / "analytics_dbt" / "models" / "staging" / "schema.yml"
    schema.write_text(schema.read_text().replace("One row per order", "Exactly one row per order", 1))
    specs = _specs(root)
    assert specs["stg_orders"].description.startswith("Exactly one row per order")
    assert _manifest(root).stat().st_mtime_ns != parsed_at

    # What the `dg dev` watcher does when a file is saved: parse in its own process, so that the
    # reloaded code server loads the edit without parsing again.
    before = specs["stg_customers"].code_version
    model = root / "analytics_dbt" / "models" / "staging" / "stg_customers.sql"
    model.write_text(model.read_text().replace("as full_name,", "as full_name,\n        1 as tier,", 1))
    dbt_dir = root / "analytics_dbt"
    (state_path,) = (root / "defs" / ".local_defs_state").glob("*/state")
    project = DbtProject(project_dir=dbt_dir, profiles_dir=dbt_dir)
    dbt_parse_cache.refresh_state(
        project,
        state_path,
        state_path.parent / "project",
        project_fingerprint(dbt_dir),
        # As the watcher of a component with `code_versions: compiled` does.
        after_parse=lambda manifest, fingerprint: compile_models(
            project, state_path.parent, fingerprint, manifest
        ),
    )
    refreshed_at = _manifest(root).stat().st_mtime_ns
    assert _specs(root)["stg_customers"].code_version != before
    assert _manifest(root).stat().st_mtime_ns == refreshed_at, "the refreshed state was fresh"


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


def test_a_load_waits_for_a_refresh_under_way_in_a_live_process(tmp_path: Path):
    state_path = tmp_path / "state"
    lock = tmp_path / dbt_parse_cache.REFRESHING_FILE
    with subprocess.Popen(["sleep", "30"]) as refreshing:
        lock.write_text(str(refreshing.pid))
        threading.Timer(0.5, lock.unlink).start()
        started = time.monotonic()
        dbt_parse_cache.wait_for_refresh(state_path)
        assert time.monotonic() - started >= 0.5
        refreshing.kill()

    lock.write_text(str(refreshing.pid))  # that process is gone: its lock is stale
    started = time.monotonic()
    dbt_parse_cache.wait_for_refresh(state_path)
    assert time.monotonic() - started < 0.5
