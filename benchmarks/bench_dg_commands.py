"""Times `dg check defs`, `dg list defs` (table and `--json`), `dg dev` start-up: ours vs plain.

    uv run python benchmarks/bench_dg_commands.py --models 1000 --repeats 3
    uv run python benchmarks/bench_dg_commands.py --seed-project --repeats 3
    uv run python benchmarks/bench_dg_commands.py --dev --models 1000 --repeats 2
    uv run python benchmarks/bench_dg_commands.py --models 5000 --repeats 1 --workdir D --reuse-projects

Both variants are generated side by side (same dbt project; only the component type differs), each
is warmed once, untimed (`dg check defs`; with `--dev`, one `dg dev` start), then the runs alternate
ours/plain (ABAB), so machine noise hits both alike. Every timed command runs with nothing changed
since the previous command on that project. `--dev` instead times `dg dev` from launch until the
webserver answers `/server_info` and the code location is loaded, then stops it; it also times a
third project, the floor: the same project with one trivial asset instead of the dbt component,
and reports the resident memory of each one's code server once its location is loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
from _common import (
    DG,
    VARIANTS,
    Samples,
    make_projects,
    markdown_table,
    project_env,
    run_dg,
)
from generate_dbt_project import Component

# Targets from the issues: ours / plain, at most. At 5,000 models `dg list defs` has the same target
# as `dg check defs`; below that, listing may cost about what plain's does.
CHECK_TARGET = 0.5
LIST_TARGET = 1.1
SCALE_MODELS = 5000
# `dg dev` has a target on the seed project only; on synthetic projects its time is reported.
DEV_TARGET_SEED_PROJECT = 0.6

# Restores default SIGTERM/SIGINT handling, which background jobs here may inherit as ignored, then
# becomes `dg dev`; the dev servers inherit the restored handlers.
SIGNAL_WRAPPER = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)

WORKSPACE_QUERY = (
    "{ workspaceOrError { __typename ... on Workspace { locationEntries "
    "{ name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)


def bench_commands(
    projects: dict[Component, Path], repeats: int, label: str, list_target: float
) -> list[Samples]:
    """Warms each variant once, then alternates timed `dg check defs`, `dg list defs` (and `--json`).

    Each turn ends with one `dg check defs` per variant right after an edit of one model's SQL (a
    comment appended), which re-parses in both; the next turn's commands then find nothing changed.
    """
    warm = Samples(f"{label}: first `dg check defs` (warm-up, cold state)", None)
    for variant in VARIANTS:
        seconds = run_dg(projects[variant], "check", "defs")
        warm.add(variant, seconds)
        print(f"  warm-up check defs {variant}: {seconds:.1f}s", flush=True)
    check = Samples(f"{label}: `dg check defs`, nothing changed", CHECK_TARGET)
    listing = Samples(f"{label}: `dg list defs`, nothing changed", list_target)
    # The same listing without dg's table drawing, which costs both variants alike (rich lays out
    # one row per asset): what is left is what the component costs.
    listing_json = Samples(f"{label}: `dg list defs --json`, nothing changed", None)
    edited = Samples(f"{label}: `dg check defs` after one model's SQL was edited", None)
    commands = (
        (check, ("check", "defs")),
        (listing, ("list", "defs")),
        (listing_json, ("list", "defs", "--json")),
    )
    for repeat in range(repeats):
        for samples, args in commands:
            for variant in VARIANTS:
                seconds = run_dg(projects[variant], *args)
                samples.add(variant, seconds)
                print(f"  [{repeat + 1}/{repeats}] dg {' '.join(args)} {variant}: {seconds:.1f}s")
        for variant in VARIANTS:
            model = min((projects[variant] / "dbt_project" / "models").rglob("*.sql"))
            model.write_text(model.read_text() + f"\n-- edited by the benchmark, turn {repeat}\n")
            seconds = run_dg(projects[variant], "check", "defs")
            edited.add(variant, seconds)
            print(f"  [{repeat + 1}/{repeats}] dg check defs after an edit {variant}: {seconds:.1f}s")
    return [warm, check, listing, listing_json, edited]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _location_status(port: int) -> tuple[bool, str | None]:
    """(loaded, error): loaded once a location is LOADED as a RepositoryLocation."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": WORKSPACE_QUERY}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False, None
    workspace = (payload.get("data") or {}).get("workspaceOrError") or {}
    for entry in workspace.get("locationEntries") or []:
        located = entry.get("locationOrLoadError") or {}
        if located.get("__typename") == "PythonError":
            return False, located.get("message", "PythonError")
        if entry.get("loadStatus") == "LOADED" and located.get("__typename") == "RepositoryLocation":
            return True, None
    return False, None


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, from /proc/<pid>/stat; None if gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """Every process below `root`, as pid -> start time (to never signal a reused pid)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, int] = {}
    pending = [root]
    while pending:
        for pid, started in children.get(pending.pop(), []):
            found[pid] = started
            pending.append(pid)
    return found


def _alive(tree: dict[int, int]) -> list[int]:
    """The pids of `tree` that are still the same live processes."""
    return [pid for pid, started in tree.items() if (stat := _stat(pid)) and stat[1] == started]


def _stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stops `dg dev` and everything it started: TERM to its process group, KILL after `timeout`.

    Descendants that left the process group are signalled by pid, checked against their start time.
    """
    tree = _descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    for pid in _alive(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process.poll() is None or _alive(tree)):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in _alive(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def code_server_rss(dev_pid: int) -> int:
    """Resident bytes of the largest code server under `dg dev`: the process holding the definitions."""
    sizes = [0]
    for process in psutil.Process(dev_pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            command = " ".join(process.cmdline())
            if "grpc" in command or "code-server" in command:
                sizes.append(process.memory_info().rss)
    return max(sizes)


def time_dev(
    project: Path,
    log_path: Path,
    timeout: float,
    watch: Callable[[int, float], None] | None = None,
    poll_seconds: float = 0.25,
    on_loaded: Callable[[int], None] | None = None,
) -> tuple[float, float]:
    """Seconds from launching `dg dev` until `/server_info` answers, and until the location loads.

    `watch(pid, elapsed)`, if given, is called on every poll with the pid of `dg dev`;
    `on_loaded(pid)` once the location is loaded, before `dg dev` is stopped.
    """
    port = _free_port()
    command = [sys.executable, "-c", SIGNAL_WRAPPER, DG, "dev", "--host", "127.0.0.1", "--port"]
    with log_path.open("wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            [*command, str(port)],
            cwd=project,
            env=project_env(project),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            ui_seconds: float | None = None
            while True:
                elapsed = time.perf_counter() - start
                if watch is not None:
                    watch(process.pid, elapsed)
                if elapsed > timeout:
                    raise TimeoutError(f"dg dev in {project} not loaded after {timeout}s; {log_path}")
                if process.poll() is not None:
                    raise RuntimeError(f"dg dev in {project} exited early; see {log_path}")
                if ui_seconds is None and _get(f"http://127.0.0.1:{port}/server_info"):
                    ui_seconds = time.perf_counter() - start
                if ui_seconds is not None:
                    loaded, error = _location_status(port)
                    if error:
                        raise RuntimeError(f"code location failed to load in {project}: {error}")
                    if loaded:
                        loaded_seconds = time.perf_counter() - start
                        if on_loaded is not None:
                            on_loaded(process.pid)
                        return ui_seconds, loaded_seconds
                time.sleep(poll_seconds)
        finally:
            _stop(process)


FLOOR_ASSET_PY = '''"""The floor project\'s only definition: one asset, no dbt component."""

import dagster as dg


@dg.asset
def placeholder() -> None:
    """Stands in for the dbt project, so that the code location has something to load."""
'''


def make_floor_project(like: Path) -> Path:
    """A copy of `like` whose defs folder holds one trivial asset instead of the dbt component.

    `dg dev` on it is the least a project takes here whatever its components: dg's YAML check, a
    temporary instance, the code server (which imports every installed component package, dbt's
    included) and the webserver, one after the other.
    """
    floor = like.parent / "floor"
    if floor.exists():
        shutil.rmtree(floor)
    shutil.copytree(like, floor, ignore=shutil.ignore_patterns("defs", "dbt_project", ".*", "*.log"))
    (floor / ".data").mkdir(exist_ok=True)
    defs = floor / "src" / "bench_project" / "defs"
    defs.mkdir()
    (defs / "placeholder.py").write_text(FLOOR_ASSET_PY)
    return floor


def bench_dev(
    projects: dict[Component, Path],
    repeats: int,
    label: str,
    timeout: float,
    memory: dict[str, list[int]],
    target: float | None,
) -> list[Samples]:
    """Alternates timed `dg dev` start-ups of both variants and of the floor project.

    Each is warmed by one untimed start first: the first start after generating a project reads
    the webserver's and daemon's modules from a cold page cache and builds the defs state. Every
    timed start adds its code server's resident bytes, once loaded, to `memory[variant]`.
    """
    starts = {**projects, "floor": make_floor_project(projects["ours"])}
    for variant, project in starts.items():
        _, seconds = time_dev(project, project / "dg_dev_warmup.log", timeout)
        print(f"  warm-up dg dev {variant}: loaded {seconds:.1f}s", flush=True)
    ui = Samples(f"{label}: `dg dev` until /server_info answers", None)
    loaded = Samples(f"{label}: `dg dev` until the code location is loaded", target)
    floor = Samples(
        f"{label}: `dg dev` of one trivial asset, no dbt component (the floor)",
        None,
        labels=("floor", "plain"),
    )
    for repeat in range(repeats):
        for variant, project in starts.items():
            log_path = project / f"dg_dev_{repeat}.log"
            ui_seconds, loaded_seconds = time_dev(
                project,
                log_path,
                timeout,
                on_loaded=lambda pid, v=variant: memory.setdefault(v, []).append(code_server_rss(pid)),
            )
            if variant == "floor":
                floor.add(variant, loaded_seconds)
            else:
                ui.add(variant, ui_seconds)
                loaded.add(variant, loaded_seconds)
            if variant == "plain":
                floor.add(variant, loaded_seconds)
            print(
                f"  [{repeat + 1}/{repeats}] dg dev {variant}: UI {ui_seconds:.1f}s, "
                f"loaded {loaded_seconds:.1f}s, code server {memory[variant][-1] / 2**20:.0f} MB",
                flush=True,
            )
    return [ui, loaded, floor]


def reused_projects(workdir: Path, n_models: int) -> dict[Component, Path] | None:
    """The synthetic projects `make_projects` wrote in `workdir` earlier, or None if one is missing."""
    projects = {variant: (workdir / f"{variant}_{n_models}").resolve() for variant in VARIANTS}
    if all((project / "dbt_project").is_dir() for project in projects.values()):
        return projects
    return None


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=1000, help="synthetic dbt models")
    parser.add_argument(
        "--seed-project",
        action="store_true",
        help="use a copy of the repository's small analytics_dbt instead of synthetic models",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant")
    parser.add_argument("--dev", action="store_true", help="time `dg dev` start-up instead")
    parser.add_argument("--dev-timeout", type=float, default=900, help="seconds per dg dev start")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the raw timings to this file")
    parser.add_argument(
        "--reuse-projects",
        action="store_true",
        help="keep the projects an earlier run generated in --workdir, with their prepared dbt "
        "state (at N=5,000 the first load parses and compiles every model for 20 minutes)",
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_dg_"))
    label = "seed project" if args.seed_project else f"N={args.models}"
    projects = reused_projects(workdir, args.models) if args.reuse_projects else None
    if projects is None:
        projects = make_projects(workdir, args.models, args.seed_project)
    print(f"projects in {workdir}; {label}; repeats={args.repeats}", flush=True)
    memory: dict[str, list[int]] = {}
    if args.dev:
        dev_target = DEV_TARGET_SEED_PROJECT if args.seed_project else None
        rows = bench_dev(projects, args.repeats, label, args.dev_timeout, memory, dev_target)
    else:
        at_scale = not args.seed_project and args.models >= SCALE_MODELS
        list_target = CHECK_TARGET if at_scale else LIST_TARGET
        rows = bench_commands(projects, args.repeats, label, list_target)

    print()
    for row in rows:
        first, second = row.labels
        print(
            f"{row.name}: {first} {row.median(first):.2f}s, {second} {row.median(second):.2f}s, "
            f"ratio {row.ratio:.2f}x" + (f" (target <= {row.target}x)" if row.target else "")
        )
    for variant, sizes in memory.items():
        print(
            f"{label}: code server resident memory once loaded, {variant}: "
            f"median {statistics.median(sizes) / 2**20:.0f} MB"
        )
    print()
    print(f"Command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(markdown_table(rows))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": [{"name": r.name, "target": r.target, "times": r.times} for r in rows],
                    "code_server_rss_bytes": memory,
                }
            )
        )


if __name__ == "__main__":
    main()
