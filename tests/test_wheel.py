"""The built wheel ships the reusable package and leaves this repository's deployment out."""

import subprocess
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _build_wheel(out_dir: Path) -> Path:
    # --offline keeps the test from downloading: hatchling comes from the uv cache.
    subprocess.run(
        ["uv", "build", "--wheel", "--offline", "-o", str(out_dir)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out_dir.glob("dagster_autopilot-*.whl")
    return wheel


def test_wheel_contains_package_and_excludes_deployment(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_text = zf.read(entry_points).decode()

    subpackages = {
        n.split("/")[1] for n in names if n.startswith("dagster_autopilot/") and n.count("/") > 1
    }
    for required in ("components", "automation", "dbt", "pipelines", "runs", "warehouse", "records"):
        assert required in subpackages, f"{required}/ missing from wheel: {sorted(subpackages)}"
    assert "dagster_autopilot/__init__.py" in names

    assert not [n for n in names if n.startswith("autopilot_deployment/")]
    assert not [n for n in names if n.endswith((".yaml", ".yml")) and "/defs/" in n]

    assert "[dagster_dg_cli.registry_modules]" in entry_text
    assert "dagster_autopilot = dagster_autopilot" in entry_text
