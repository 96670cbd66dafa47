"""Code versions from the compiled SQL: what compiling costs `dg`, side by side with plain dagster-dbt.

    uv run python benchmarks/bench_compiled_versions.py --repeats 3 [--models N] [--edit-loop-repeats 3]

Three measurements, in one run:
- `dg check defs` with nothing changed: CustomDbtComponent (`code_versions: compiled`, the
  default) vs plain `DbtProjectComponent` on the same dbt project (target: at most 0.5x);
- `dg check defs` right after one model's logic was edited (a column added): ours parses and
  compiles that one model again, plain parses;
- the `dg dev` edit loop: save a model's SQL until the reloaded code location is loaded (the
  watcher parses and compiles in-process first), and until the automation requests its run
  (`bench_edit_loop.py`, run as a child; target: loaded within 10 s of the save).

The first two use the repository's `analytics_dbt` (the "seed project") unless `--models N` asks
for N synthetic models. Runs alternate ours / plain (ABAB); every variant is warmed once first.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import VARIANTS, Samples, make_projects, markdown_table, run_dg

CHECK_TARGET = 0.5
LOADED_TARGET_SECONDS = 10.0
EDIT_LOOP = Path(__file__).with_name("bench_edit_loop.py")
STAGE_ROW = re.compile(
    r"^\| (?P<stage>[a-z ]+) \| (?P<median>[\d.]+) \| (?P<min>[\d.]+) \| (?P<max>[\d.]+) \|$"
)


def _edit_one_model(project: Path, turn: int) -> None:
    """Adds a column to one model: a logic edit, which changes its compiled SQL."""
    models = sorted((project / "dbt_project" / "models").rglob("*.sql"))
    model = next((m for m in models if "select * from final" in m.read_text()), models[0])
    text = model.read_text()
    if "select * from final" in text:
        text = text.replace(
            "select * from final", f"select *, {turn} as bench_turn_{turn} from final", 1
        )
    else:
        text += f"\n-- edited by the benchmark, turn {turn}\n"
    model.write_text(text)


def bench_check(projects: dict[str, Path], repeats: int, label: str) -> list[Samples]:
    for variant in VARIANTS:
        seconds = run_dg(projects[variant], "check", "defs")
        print(f"  warm-up check defs {variant}: {seconds:.1f}s", flush=True)
    unchanged = Samples(f"{label}: `dg check defs`, nothing changed", CHECK_TARGET)
    edited = Samples(f"{label}: `dg check defs` after one model's logic was edited", None)
    for turn in range(repeats):
        for variant in VARIANTS:
            seconds = run_dg(projects[variant], "check", "defs")
            unchanged.add(variant, seconds)
            print(f"  [{turn + 1}/{repeats}] check defs, nothing changed, {variant}: {seconds:.1f}s")
        for variant in VARIANTS:
            _edit_one_model(projects[variant], turn)
            seconds = run_dg(projects[variant], "check", "defs")
            edited.add(variant, seconds)
            print(f"  [{turn + 1}/{repeats}] check defs after an edit, {variant}: {seconds:.1f}s")
    return [unchanged, edited]


def bench_edit_loop(repeats: int) -> dict[str, tuple[float, float, float]]:
    """Runs `bench_edit_loop.py`; returns stage -> (median, min, max) seconds after the save."""
    result = subprocess.run(
        [sys.executable, str(EDIT_LOOP), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stdout, flush=True)
    if result.returncode != 0:
        raise RuntimeError(f"bench_edit_loop.py failed:\n{result.stderr[-3000:]}")
    stages = {}
    for line in result.stdout.splitlines():
        if match := STAGE_ROW.match(line.strip()):
            stages[match["stage"]] = (
                float(match["median"]),
                float(match["min"]),
                float(match["max"]),
            )
    return stages


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed `dg check defs` pairs")
    parser.add_argument("--models", type=int, help="synthetic models instead of the seed project")
    parser.add_argument("--edit-loop-repeats", type=int, default=3, help="0 skips the dg dev loop")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_compiled_"))
    seed_project = args.models is None
    label = "seed project" if seed_project else f"N={args.models}"
    projects = make_projects(workdir, args.models or 0, seed_project)
    print(f"projects in {workdir}; {label}; repeats={args.repeats}", flush=True)
    rows = bench_check(projects, args.repeats, label)
    stages = bench_edit_loop(args.edit_loop_repeats) if args.edit_loop_repeats else {}

    print()
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(markdown_table(rows))
    if stages:
        print()
        print("| `dg dev` edit loop, seconds after the save | median | min | max | target |")
        print("|---|---:|---:|---:|---|")
        for stage, (median, low, high) in stages.items():
            target = f"<= {LOADED_TARGET_SECONDS:.0f} s" if stage == "loaded" else "-"
            print(f"| {stage} | {median:.1f} | {low:.1f} | {high:.1f} | {target} |")
        loaded = stages.get("loaded")
        if loaded is not None:
            verdict = "ok" if loaded[0] <= LOADED_TARGET_SECONDS else "MISSED"
            print(f"\nsave -> reloaded state loaded: median {loaded[0]:.1f} s ({verdict})")
    print(f"check defs, nothing changed: {rows[0].ratio:.2f}x plain ({rows[0].verdict()})")


if __name__ == "__main__":
    main()
