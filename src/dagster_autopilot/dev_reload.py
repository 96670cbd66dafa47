"""In `dg dev`, reloads the code location by itself when a file of a dbt project is saved.

Without it, an edited model is only seen after a manual "Reload definitions". The code server that
loaded the definitions polls the project's files; on a change it asks the webserver to reload every
code location, the new code server re-parses the project (see `dbt_parse_cache`), and the automation
sensor's next tick sees the new code version.
"""

import itertools
import json
import logging
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from dagster_autopilot.dbt_parse_cache import source_files

logger = logging.getLogger("dagster_autopilot.dev_reload")

WEBSERVER_URL_ENV = "AUTOPILOT_WEBSERVER_URL"
_watched: set[Path] = set()


def _is_dev_code_server() -> bool:
    # `dg dev` serves definitions from a long-lived gRPC code server; `dg check` and `dg list`
    # load them once and exit, and must not start a thread.
    return bool(os.environ.get("DAGSTER_IS_DEV_CLI")) and "grpc" in sys.argv


def _ancestor_args() -> list[list[str]]:
    """Command lines of this process's ancestors, nearest first (Linux; empty elsewhere)."""
    found, pid = [], os.getppid()
    for _ in range(8):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        found.append([arg.decode(errors="replace") for arg in cmdline.split(b"\0") if arg])
        if pid <= 1:
            break
    return found


def webserver_url() -> str:
    """`AUTOPILOT_WEBSERVER_URL`, else the host and port that `dg dev` was started with."""
    if os.environ.get(WEBSERVER_URL_ENV):
        return os.environ[WEBSERVER_URL_ENV].rstrip("/")
    host, port = "127.0.0.1", "3000"
    for args in reversed(_ancestor_args()):  # outermost first: the `dg dev` command itself
        if "dev" not in args[1:4]:
            continue  # e.g. a `code-server start --port` between us and `dg dev`: a gRPC port
        for flag, value in itertools.pairwise(args):
            if flag in ("-p", "--port"):
                port = value
            elif flag in ("-h", "--host") and value not in ("0.0.0.0", "::"):
                host = value
    return f"http://{host}:{port}"


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def reload_code_locations(url: str) -> list[str]:
    """Asks the webserver at `url` to reload every code location; returns their names."""
    workspace = _graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }")
    names = [e["name"] for e in workspace["data"]["workspaceOrError"]["locationEntries"]]
    for name in names:
        _graphql(
            url,
            "mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name)"
            " { __typename } }",
            {"name": name},
        )
    return names


def _snapshot(directories: list[Path]) -> tuple:
    return tuple(
        (str(path), path.stat().st_mtime_ns, path.stat().st_size)
        for directory in directories
        for path in source_files(directory)
    )


def _watch(
    directories: list[Path], fingerprint: Callable[[], str], loaded: str | None, interval: float
) -> None:
    loaded = loaded or fingerprint()
    last = _snapshot(directories)
    while True:
        time.sleep(interval)
        try:
            current = _snapshot(directories)
            if current == last:
                continue
            last = current
            if fingerprint() == loaded:
                continue  # touched, or saved back to what was loaded
            url = webserver_url()
            names = reload_code_locations(url)
            logger.info("dbt project changed: reloaded code locations %s via %s", names, url)
            return  # this code server is being replaced by the reloaded one
        except Exception:  # a watcher must never take the code server down
            logger.exception("dbt project watcher could not reload the code location")


def watch_in_dev(
    directories: list[Path],
    fingerprint: Callable[[], str],
    loaded: str | None,
    interval: float = 1.0,
) -> bool:
    """Starts watching `directories` when running as `dg dev`'s code server; True if started.

    `loaded` is the fingerprint the definitions were built from (computed when the thread starts
    if unknown); a reload is asked for when `fingerprint()` of the saved files differs from it.
    """
    key = directories[0].resolve()
    if not _is_dev_code_server() or key in _watched:
        return False
    _watched.add(key)
    threading.Thread(
        target=_watch,
        args=(directories, fingerprint, loaded, interval),
        daemon=True,
        name="dbt-project-watcher",
    ).start()
    return True
