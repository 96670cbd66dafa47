"""Helpers shared by the benchmarks: generating both variants, running `dg`, summarizing times."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from generate_dbt_project import Component, write_project

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_DBT_PROJECT = REPO_ROOT / "analytics_dbt"
VENV_BIN = Path(sys.executable).parent
DG = str(VENV_BIN / "dg")
VARIANTS: tuple[Component, Component] = ("ours", "plain")


def make_projects(workdir: Path, n_models: int, seed_project: bool) -> dict[Component, Path]:
    """Writes the `ours` and `plain` variants of one project under `workdir`.

    `seed_project` copies the main repository's small `analytics_dbt` instead of generating
    `n_models` synthetic models.
    """
    source = SEED_DBT_PROJECT if seed_project else None
    label = "seed" if seed_project else str(n_models)
    return {
        variant: write_project(
            workdir / f"{variant}_{label}", n_models, variant, from_dbt_project=source
        )
        for variant in VARIANTS
    }


def project_env(project: Path) -> dict[str, str]:
    """The environment `dg` runs with in `project`: its `src/` importable, dbt on PATH.

    `DAGSTER_HOME` is dropped so every command uses a throwaway instance, never a shared one.
    """
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(project / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PATH"] = os.pathsep.join((str(VENV_BIN), os.environ.get("PATH", "")))
    env["AUTOPILOT_DUCKDB_PATH"] = str(project / ".data" / "warehouse.duckdb")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class CommandFailedError(RuntimeError):
    """A benchmarked command exited with a non-zero status."""


def run_dg(project: Path, *args: str) -> float:
    """Runs `dg <args>` in `project` and returns its wall-clock seconds; raises if it fails."""
    start = time.perf_counter()
    result = subprocess.run(
        [DG, *args],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise CommandFailedError(f"dg {' '.join(args)} failed in {project}:\n{tail}")
    return elapsed


@dataclass
class Samples:
    """Timings of one measurement for two variants: ours first, the baseline second."""

    name: str
    target: float | None
    labels: tuple[str, str] = VARIANTS
    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: str, seconds: float) -> None:
        """Records one timing of `label`."""
        self.times.setdefault(label, []).append(seconds)

    def median(self, label: str) -> float:
        """Median seconds of `label`."""
        return statistics.median(self.times[label])

    @property
    def ratio(self) -> float:
        """Median of ours over median of the baseline."""
        return self.median(self.labels[0]) / self.median(self.labels[1])

    def verdict(self) -> str:
        """`ok` or `MISSED` against the target ratio, or `-` without a target."""
        if self.target is None:
            return "-"
        return "ok" if self.ratio <= self.target else "MISSED"


def markdown_table(rows: list[Samples]) -> str:
    """The results as a markdown table: medians, ratio, target, verdict and raw samples."""
    ours, base = rows[0].labels
    lines = [
        f"| measurement | {ours} median s | {base} median s | ratio | target | verdict | raw s |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        raw = "; ".join(
            f"{v}: " + ", ".join(f"{t:.2f}" for t in row.times.get(v, [])) for v in row.labels
        )
        target = f"<= {row.target}x" if row.target is not None else "-"
        # A row may compare other variants than the header's (e.g. the floor against plain).
        first, second = (
            f"{row.median(label):.2f}" + ("" if label == header else f" ({label})")
            for label, header in zip(row.labels, (ours, base), strict=True)
        )
        lines.append(
            f"| {row.name} | {first} | {second} | "
            f"{row.ratio:.2f}x | {target} | {row.verdict()} | {raw} |"
        )
    return "\n".join(lines)
