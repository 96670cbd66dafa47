"""Bad configuration fails `dg check defs` with the file and the field, and changes nothing."""

import os
import subprocess
from pathlib import Path

import pytest
from harness import REPO_ROOT, copy_project

ANALYTICS_YAML = Path("defs") / "analytics" / "defs.yaml"
TALENT_YAML = Path("defs") / "talent" / "defs.yaml"
STAGING_SCHEMA = Path("analytics_dbt") / "models" / "staging" / "schema.yml"

# Each case breaks one file of a fresh copy of the project: (file, text, replacement), and the
# texts `dg check defs` must print: where the error is, which field, and why.
CASES = {
    "bad-cron": (
        (ANALYTICS_YAML, 'cron: "0 6 * * *"', 'cron: "0 25 * * *"'),
        ["defs.yaml", "cron", "not a valid cron"],
    ),
    "unknown-materialization": (
        (ANALYTICS_YAML, "    table:\n", "    tabel:\n"),
        ["defs.yaml", "attributes.policies", "tabel"],
    ),
    "unknown-key": (
        (ANALYTICS_YAML, "  policies:", "  polices: {}\n  policies:"),
        ["defs.yaml", "polices", "not allowed"],
    ),
    "bad-schedule-cron": (
        (ANALYTICS_YAML, 'cron_schedule: "0 * * * *"', 'cron_schedule: "every hour"'),
        ["defs.yaml", "cron_schedule", "not a valid cron"],
    ),
    "bad-dbt-meta": (
        (
            STAGING_SCHEMA,
            "  - name: stg_orders\n",
            "  - name: stg_orders\n    config:\n      meta:\n        dagster:\n          automation:\n"
            '            cron: "61 * * * *"\n',
        ),
        ["models/staging/stg_orders.sql", "meta.dagster.automation.cron"],
    ),
    # The component tree names the folder, the file and the document: talent > defs.yaml[4].
    "bad-talent-number": (
        (TALENT_YAML, "  top_k: 10\n", "  top_k: ten\n"),
        [
            "talent",
            "defs.yaml[4] (VectorMatchComponent) (error)",
            "top_k: expected an integer, got 'ten'",
        ],
    ),
}


def start_dg_check_defs(root: Path) -> subprocess.Popen:
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
    return subprocess.Popen(
        [str(dg), "check", "defs"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, tuple[int, str]]:
    """Every case's exit code and output. The checks run side by side: each is a minute of
    mostly single-threaded imports and parsing."""
    running = {}
    for case, ((file, old, new), _) in CASES.items():
        root = copy_project(tmp_path_factory.mktemp(case))
        text = (root / file).read_text()
        assert old in text, f"{old!r} not in {file}"
        (root / file).write_text(text.replace(old, new, 1))
        running[case] = start_dg_check_defs(root)
    results = {}
    for case, process in running.items():
        output, _ = process.communicate(timeout=900)
        results[case] = (process.returncode, output)
    return results


@pytest.mark.parametrize("case", CASES)
def test_bad_configuration_names_the_file_and_the_field(checked, case):
    returncode, output = checked[case]
    assert returncode != 0, output
    for expected in CASES[case][1]:
        assert expected in output, output
