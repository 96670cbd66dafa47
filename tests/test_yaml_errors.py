"""Bad configuration fails `dg check defs` with the file and the field, and changes nothing."""

import os
import subprocess
from pathlib import Path

import pytest
from harness import REPO_ROOT, copy_project

DEFS_YAML = Path("defs") / "analytics" / "defs.yaml"


def dg_check_defs(root: Path) -> subprocess.CompletedProcess:
    # Runs the real `dg` from this environment on the copy, as a user would in CI.
    dg = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin" / "dg"
    env = {
        **os.environ,
        "AUTOPILOT_DUCKDB_PATH": str(root / "w.duckdb"),
        "NO_COLOR": "1",
        # The copy's own package first, so its `defs` symlink leads to the copy's YAML.
        "PYTHONPATH": str(root / "src"),
    }
    env.pop("DAGSTER_IS_DEV_CLI", None)
    return subprocess.run(
        [str(dg), "check", "defs"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def broken_copy(tmp_path_factory):
    def make(old: str, new: str, file: Path = DEFS_YAML) -> Path:
        root = copy_project(tmp_path_factory.mktemp("broken"))
        text = (root / file).read_text()
        assert old in text
        (root / file).write_text(text.replace(old, new, 1))
        return root

    return make


@pytest.mark.parametrize(
    ("old", "new", "field", "why"),
    [
        ('cron: "0 6 * * *"', 'cron: "0 25 * * *"', "cron", "not a valid cron"),
        ("    table:\n", "    tabel:\n", "attributes.policies", "tabel"),
        ("  policies:", "  polices: {}\n  policies:", "polices", "not allowed"),
        (
            'cron_schedule: "0 * * * *"',
            'cron_schedule: "every hour"',
            "cron_schedule",
            "not a valid cron",
        ),
    ],
    ids=["bad-cron", "unknown-materialization", "unknown-key", "bad-schedule-cron"],
)
def test_bad_yaml_names_file_and_field(broken_copy, old, new, field, why):
    result = dg_check_defs(broken_copy(old, new))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "defs.yaml" in output, output
    assert field in output, output
    assert why in output, output


def test_bad_meta_names_the_model_file_and_field(broken_copy):
    root = broken_copy(
        "  - name: stg_orders\n",
        "  - name: stg_orders\n    config:\n      meta:\n        dagster:\n          automation:\n"
        '            cron: "61 * * * *"\n',
        Path("analytics_dbt") / "models" / "staging" / "schema.yml",
    )
    result = dg_check_defs(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "models/staging/stg_orders.sql" in output, output
    assert "meta.dagster.automation.cron" in output, output


def test_bad_talent_yaml_names_the_file_and_the_field(broken_copy):
    root = broken_copy("  top_k: 10\n", "  top_k: ten\n", Path("defs") / "talent" / "defs.yaml")
    result = dg_check_defs(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "talent/defs.yaml" in output, output
    assert "top_k" in output, output
