"""Skips `dbt parse` when nothing it reads has changed since the last parse.

`dg` re-parses the dbt project on every command (about 20 s here, minutes at 1,000+ models). The
parse is a pure function of the project's files, the dbt and dagster-dbt versions, the target and
the environment variables the project reads, so a hash of those decides whether it can be skipped.

In `dg dev`, `refresher` lets the code server that sees a save write the new state itself (dbt is
imported there already) while the reloaded code server starts, which then finds it fresh.
"""

import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster_autopilot import _dagster_internals as internals

if TYPE_CHECKING:
    from dagster_dbt import DbtProject

# Build output and installed packages: written by dbt, not read by the parse as sources.
_DERIVED = frozenset({"target", "logs", "dbt_packages", "dbt_modules", ".user.yml", "__pycache__"})
_ENV_VAR_USE = re.compile(rb"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")
FINGERPRINT_FILE = "parse_fingerprint"
# Holds the pid of a process refreshing the state in-process (see `refresher`).
REFRESHING_FILE = "refreshing"
# Runs after a parse, with dbt's in-memory manifest (None when dbt ran in another process) and the
# fingerprint the state is being prepared for.
AfterParse = Callable[[Any, str], None]


def _is_source_name(name: str) -> bool:
    return name not in _DERIVED and not name.startswith(".")


def is_source_path(root: Path, path: Path) -> bool:
    """Whether `path`, inside the dbt project at `root`, is one a parse reads (see `source_files`)."""
    return all(_is_source_name(part) for part in path.relative_to(root).parts)


def source_files(directory: Path) -> Iterable[Path]:
    """The files of a dbt project a parse reads, in a stable order: not build output or dotfiles."""
    for entry in sorted(directory.iterdir()):
        if not _is_source_name(entry.name):
            continue
        if entry.is_dir():
            yield from source_files(entry)
        elif entry.is_file():
            yield entry


def project_fingerprint(*roots: Path) -> str:
    """A hash of everything a `dbt parse` of the project (and its profiles folder) depends on."""
    digest = hashlib.sha256()
    env_vars_read: set[bytes] = set()
    for root in roots:
        for path in source_files(root):
            content = path.read_bytes()
            env_vars_read.update(_ENV_VAR_USE.findall(content))
            digest.update(f"\0{root.name}/{path.relative_to(root)}\0".encode())
            digest.update(content)
    for package in ("dbt-core", "dagster-dbt"):
        digest.update(f"\0{package}={version(package)}".encode())
    for name in sorted({"DBT_TARGET", "DBT_PROFILE", *(n.decode() for n in env_vars_read)}):
        digest.update(f"\0{name}={os.environ.get(name)}".encode())
    return digest.hexdigest()


def remembered(state_path: Path) -> str | None:
    """The fingerprint the state at `state_path` was parsed from, if known."""
    marker = state_path.parent / FINGERPRINT_FILE
    return marker.read_text() if marker.exists() else None


def is_fresh(state_path: Path, fingerprint: str, manifest_path: Path) -> bool:
    """True when the state at `state_path` was parsed from exactly this fingerprint."""
    return manifest_path.exists() and remembered(state_path) == fingerprint


def remember(state_path: Path, fingerprint: str) -> None:
    """Records that the state at `state_path` was parsed from `fingerprint`."""
    (state_path.parent / FINGERPRINT_FILE).write_text(fingerprint)


class DbtParseError(RuntimeError):
    """`dbt parse` failed: the project has an error that the next load will report."""


def _in_process_parse_args(project: "DbtProject") -> list[str] | None:
    """The arguments dagster-dbt's preparer would give `dbt`, or None if it is not the default one."""
    from dagster_dbt.dbt_project import DagsterDbtProjectPreparer

    if type(project.preparer) is not DagsterDbtProjectPreparer:
        return None  # a custom preparer: only it knows what preparing means
    target_path = Path(project.project_dir, project.target_path)
    args = [
        *internals.dbt_prepare_cli_args(project.preparer),
        "--project-dir",
        str(project.project_dir),
        "--profiles-dir",
        str(project.profiles_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path),
    ]
    if project.profile:
        args += ["--profile", project.profile]
    if project.target:
        args += ["--target", project.target]
    return args


def warm_up() -> None:
    """Imports dbt's command runner, so that a later in-process parse does not wait for it."""
    import dbt.cli.main  # noqa: F401


def parses_in_process(project: "DbtProject") -> bool:
    """Whether `parse_in_process` parses `project` here rather than through its preparer."""
    has_packages = any(
        Path(project.project_dir, name).exists() for name in ("packages.yml", "dependencies.yml")
    )
    return not has_packages and _in_process_parse_args(project) is not None


def parse_in_process(project: "DbtProject") -> Any:
    """Prepares `project` as dagster-dbt's preparer does, but runs `dbt parse` in this process.

    dagster-dbt starts a `dbt` process, which imports dbt again (about 5 s here) before parsing; a
    process that has dbt imported already parses in the time of dbt's partial parse alone. Projects
    with packages or a custom preparer are prepared the usual way. Returns dbt's in-memory manifest
    when the parse ran here, else None.
    """
    args = _in_process_parse_args(project)
    if args is None or not parses_in_process(project):
        project.preparer.prepare(project)
        return None
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(args, send_anonymous_usage_stats=False)
    if not result.success:
        raise DbtParseError(f"dbt parse failed in {project.project_dir}: {result.exception}")
    # As dagster-dbt does after its parse: seeds are parsed again at run time, from the copy.
    internals.dbt_invalidate_seeds_in_partial_parse(project.preparer, project)
    return result.result


def refresh_state(
    project: "DbtProject",
    state_path: Path,
    copy_dir: Path,
    fingerprint: str,
    after_parse: AfterParse | None = None,
) -> None:
    """Writes the state a `dg` load would write (parsed project copied to `copy_dir`), in-process.

    `fingerprint` must be taken before the parse reads the files, so that an edit made during
    the parse makes the state stale rather than wrongly fresh. `after_parse(manifest, fingerprint)`,
    if given, runs between the parse and the copy, with dbt's in-memory manifest (or None).
    """
    marker = state_path.parent / FINGERPRINT_FILE
    marker.unlink(missing_ok=True)  # until the new copy is complete, the state is not fresh
    dbt_manifest = parse_in_process(project)
    if after_parse is not None:
        after_parse(dbt_manifest, fingerprint)
    if copy_dir.exists():
        shutil.rmtree(copy_dir)
    shutil.copytree(project.project_dir, copy_dir, ignore=_copy_ignore(copy_dir))
    state_path.touch()
    remember(state_path, fingerprint)


def refresher(
    project: "DbtProject", state_path: Path, copy_dir: Path, after_parse: AfterParse | None = None
) -> Callable[[str], None]:
    """A function that starts `refresh_state` of this project in the background and returns.

    Call it with the fingerprint of the saved files. Until the refresh ends, `wait_for_refresh`
    blocks, so a code server that loads meanwhile finds the state fresh instead of parsing too.
    """

    def start(fingerprint: str) -> None:
        lock = state_path.parent / REFRESHING_FILE
        lock.write_text(str(os.getpid()))

        def run() -> None:
            try:
                refresh_state(project, state_path, copy_dir, fingerprint, after_parse)
            finally:
                lock.unlink(missing_ok=True)

        threading.Thread(target=run, daemon=True, name="dbt-parse-refresh").start()

    return start


def wait_for_refresh(state_path: Path, timeout: float = 300) -> None:
    """Waits while another process refreshes the state at `state_path` (see `refresher`)."""
    lock = state_path.parent / REFRESHING_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(lock.read_text())
        except (OSError, ValueError):
            return  # no refresh under way
        if pid == os.getpid() or not _is_alive(pid):
            return  # our own, or left behind by a process that died
        time.sleep(0.1)


def _is_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def _copy_ignore(destination: Path) -> Callable[[str, list[str]], set[str]]:
    # As dagster-dbt's copy: no git history, and never the copy itself when it lies inside.
    resolved = destination.resolve()

    def ignore(directory: str, names: list[str]) -> set[str]:
        parent = Path(directory).resolve()
        return {n for n in names if n == ".git" or (parent / n).resolve() == resolved}

    return ignore
