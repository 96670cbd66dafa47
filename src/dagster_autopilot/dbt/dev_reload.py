"""In `dg dev`, reloads the code location by itself when a file of a dbt project is saved.

Without it, an edited model is only seen after a manual "Reload definitions". The code server that
loaded the definitions watches the project's files (watchfiles). On a change it starts refreshing
the parsed state itself, and at once asks the webserver to reload every code location
(dagster-graphql). The parse runs while the new code server imports its modules: dbt is imported
in this process already (warmed up in the background), so a partial `dbt parse` here costs seconds,
where the new code server would start a `dbt` process and import dbt again. The new code server
waits for the refresh, finds the state fresh (see `parse_cache.py`), and the automation sensor's
next tick sees the new code version.
"""

import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil
import watchfiles

from dagster_autopilot.dbt.parse_cache import is_source_path, source_files

logger = logging.getLogger("dagster_autopilot.dbt.dev_reload")

WEBSERVER_URL_ENV = "AUTOPILOT_WEBSERVER_URL"
LIST_TIMEOUT_SECONDS = 30
RELOAD_TIMEOUT_SECONDS = 600
SETTLE_SECONDS = 0.1
WARM_UP_DELAY_SECONDS = 15
LOCATIONS_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
_watched: set[Path] = set()


def _is_dev_code_server() -> bool:
    # `dg dev` serves definitions from a long-lived gRPC code server; `dg check` and `dg list`
    # load them once and exit, and must not start a thread.
    return bool(os.environ.get("DAGSTER_IS_DEV_CLI")) and "grpc" in sys.argv


def _ancestor_args() -> list[list[str]]:
    """Command lines of this process's ancestors, nearest first (those it may read)."""
    found = []
    for ancestor in psutil.Process().parents():
        try:
            found.append(ancestor.cmdline())
        except psutil.Error:
            continue  # exited meanwhile, or another user's process
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


def reload_code_locations(url: str) -> list[str]:
    """Asks the webserver at `url` to reload every code location; returns their names."""
    # Imported here: a second of imports that only `dg dev`'s code server needs.
    import gql
    from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus
    from gql.transport.requests import RequestsHTTPTransport

    endpoint = f"{url}/graphql"
    # dagster-graphql's client lists no code locations: the workspace query goes through gql.
    listing = gql.Client(transport=RequestsHTTPTransport(endpoint, timeout=LIST_TIMEOUT_SECONDS))
    workspace = listing.execute(gql.gql(LOCATIONS_QUERY))["workspaceOrError"]
    names = [entry["name"] for entry in workspace["locationEntries"]]
    client = DagsterGraphQLClient(
        url,
        # The webserver answers once the new code server has loaded the definitions.
        transport=RequestsHTTPTransport(endpoint, timeout=RELOAD_TIMEOUT_SECONDS),
    )
    for name in names:
        reloaded = client.reload_repository_location(name)
        if reloaded.status is not ReloadRepositoryLocationStatus.SUCCESS:
            # The UI shows the code location's load error.
            logger.warning("code location %s did not reload: %s", name, reloaded.message)
    return names


def _import_reload_client() -> None:
    """Imports what `reload_code_locations` needs, so that a reload does not wait for it."""
    import dagster_graphql  # noqa: F401
    import gql.transport.requests  # noqa: F401


def _parse_input_filter(directories: list[Path]) -> Callable[[watchfiles.Change, str], bool]:
    """A watchfiles filter that keeps the paths `source_files` lists (or did, once deleted)."""

    def is_parse_input(change: watchfiles.Change, path: str) -> bool:
        changed = Path(path)
        for directory in directories:
            if changed.is_relative_to(directory):
                return is_source_path(directory, changed)
        return False

    return is_parse_input


def _last_saved(directories: Iterable[Path]) -> float:
    return max(
        (path.stat().st_mtime for directory in directories for path in source_files(directory)),
        default=0,
    )


def _watch(
    directories: list[Path],
    fingerprint: Callable[[], str],
    loaded: str | None,
    interval: float,
    refresh: Callable[[str], None] | None = None,
    warm_up: Callable[[], None] | None = None,
) -> None:
    """Waits for a save that changes `fingerprint()` from `loaded`, then asks for the reload.

    Every `interval` seconds without a change, the watcher wakes up (for the warm-up).
    """
    # Not at once: the code server is still building and serving the definitions, which the
    # warm-up (seconds of imports, holding the GIL) would slow down.
    warm_up_at: float | None = time.monotonic() + WARM_UP_DELAY_SECONDS
    directories = [directory.resolve() for directory in directories]
    while True:
        try:
            loaded = loaded or fingerprint()
            # The first pass, once the files are watched, compares them with `loaded`, so that a
            # save made while the definitions were being built is not missed.
            compare = True
            for changes in watchfiles.watch(
                *directories,
                watch_filter=_parse_input_filter(directories),
                # An editor may write a file in several steps: wait until the files stop changing.
                step=int(SETTLE_SECONDS * 1000),
                rust_timeout=int(interval * 1000),
                yield_on_timeout=True,
            ):
                if warm_up_at is not None and time.monotonic() >= warm_up_at:
                    warm_up_at = None
                    try:
                        _import_reload_client()
                        if warm_up is not None:
                            warm_up()
                    except Exception:
                        logger.exception("dbt project watcher could not warm up")
                if not (changes or compare):
                    continue
                compare = False
                detected = time.time()
                changed = fingerprint()
                if changed == loaded:
                    if changes:
                        logger.info("dbt project saved as it was loaded: no reload")
                    continue
                if _refresh_and_reload(directories, changed, detected, refresh):
                    return  # this code server is being replaced by the reloaded one
        except Exception:  # a watcher must never take the code server down
            logger.exception("dbt project watcher failed; it watches again")
            time.sleep(interval)


def _refresh_and_reload(
    directories: list[Path],
    changed: str,
    detected: float,
    refresh: Callable[[str], None] | None,
) -> bool:
    """Starts the refresh of the state to `changed`, then asks for the reload; True if done."""
    if refresh is not None:
        try:
            refresh(changed)
        except Exception:
            # The reloaded code server parses again and reports the error in the UI.
            logger.exception("dbt project watcher could not refresh the parse in-process")
    url = webserver_url()
    # Logged first: the reload replaces this process, possibly before the call returns.
    logger.info(
        "dbt project changed: save seen after %.1f s; asking %s to reload the code locations at=%.3f",
        detected - _last_saved(directories),
        url,
        time.time(),
    )
    try:
        names = reload_code_locations(url)
    except Exception:
        # Asked again on the next save.
        logger.exception("dbt project watcher could not reload the code location")
        return False
    logger.info("reloaded code locations %s", names)
    return True


def watch_in_dev(
    directories: list[Path],
    fingerprint: Callable[[], str],
    loaded: str | None,
    interval: float = 1.0,
    refresh: Callable[[str], None] | None = None,
    warm_up: Callable[[], None] | None = None,
) -> bool:
    """Starts watching `directories` when running as `dg dev`'s code server; True if started.

    `loaded` is the fingerprint the definitions were built from (computed when the thread starts
    if unknown); a reload is asked for when `fingerprint()` of the saved files differs from it.
    Just before, `refresh(new_fingerprint)` (if given) starts writing the state the reloaded code
    server will load; `warm_up()` runs once, a little after the thread starts, to prepare for it.
    """
    key = directories[0].resolve()
    if not _is_dev_code_server() or key in _watched:
        return False
    _watched.add(key)
    if not logger.handlers:
        # The code server configures no handler that prints INFO; `dg dev` shows its stderr.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    threading.Thread(
        target=_watch,
        args=(directories, fingerprint, loaded, interval, refresh, warm_up),
        daemon=True,
        name="dbt-project-watcher",
    ).start()
    return True
