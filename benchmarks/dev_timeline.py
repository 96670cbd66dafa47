"""Where one `dg dev` start-up goes: every process it starts, when, and its CPU seconds.

    uv run python benchmarks/bench_dg_commands.py --dev --seed-project --repeats 1 --workdir /tmp/b
    uv run python benchmarks/dev_timeline.py /tmp/b/ours_seed /tmp/b/floor /tmp/b/plain_seed

Starts `dg dev` in each project as `bench_dg_commands.py --dev` does, reads its process tree from
`/proc` every 0.1 s until the code location is loaded, stops it, and prints one line per process:
when it appeared (seconds from launch), its parent, and the CPU seconds it had used by the end.
Linux only.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench_dg_commands import _descendants, time_dev

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    """One process of the start-up, as last seen."""

    pid: int
    parent: int
    appeared: float
    command: str
    cpu_seconds: float = 0.0


def _read_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of `pid`, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _command(pid: int) -> str:
    """The command line of `pid` on one line (NUL-separated arguments and newlines folded)."""
    try:
        return " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode().split())
    except OSError:
        return "?"


def timeline(project: Path, timeout: float) -> tuple[float, list[Process]]:
    """Seconds until the location loaded in `project`, and every process seen until then."""
    seen: dict[int, Process] = {}

    def sample(root: int, elapsed: float) -> None:
        for pid in [root, *_descendants(root)]:
            stat = _read_stat(pid)
            if stat is not None:
                entry = seen.setdefault(pid, Process(pid, stat[0], elapsed, _command(pid)))
                entry.cpu_seconds = stat[1]

    _, loaded = time_dev(project, project / "dg_dev_timeline.log", timeout, sample, 0.1)
    return loaded, sorted(seen.values(), key=lambda p: p.appeared)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("projects", type=Path, nargs="+", help="dg projects (e.g. from --workdir)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per start")
    args = parser.parse_args()
    for project in args.projects:
        loaded, processes = timeline(project.resolve(), args.timeout)
        print(f"\n{project}: location loaded after {loaded:.1f}s")
        print(f"{'pid':>8} {'parent':>8} {'from s':>7} {'cpu s':>6}  command")
        for p in processes:
            print(f"{p.pid:>8} {p.parent:>8} {p.appeared:>7.1f} {p.cpu_seconds:>6.1f}  {p.command[:90]}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
