"""The dbt project watcher asks the webserver to reload when, and only when, a parse would differ."""

import json
import logging
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from harness import copy_project
from watchfiles import Change

from dagster_autopilot.dbt import dev_reload
from dagster_autopilot.dbt.parse_cache import project_fingerprint


class _FakeWebserver(BaseHTTPRequestHandler):
    queries: ClassVar[list[dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeWebserver.queries.append(body)
        data = {
            "workspaceOrError": {"locationEntries": [{"name": "analytics"}]},
            "reloadRepositoryLocation": {
                "__typename": "WorkspaceLocationEntry",
                "name": "analytics",
                "locationOrLoadError": {"__typename": "RepositoryLocation"},
            },
        }
        payload = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def webserver(monkeypatch: pytest.MonkeyPatch):
    server = HTTPServer(("127.0.0.1", 0), _FakeWebserver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _FakeWebserver.queries = []
    monkeypatch.setenv(dev_reload.WEBSERVER_URL_ENV, f"http://127.0.0.1:{server.server_port}")
    yield _FakeWebserver.queries
    server.shutdown()


def _reloads(queries: list[dict]) -> list[str]:
    return [
        q["variables"]["repositoryLocationName"]
        for q in queries
        if "reloadRepositoryLocation" in q["query"]
    ]


@pytest.fixture
def watcher_log():
    """The messages the watcher logs, from any thread."""
    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    dev_reload.logger.addHandler(handler)
    level = dev_reload.logger.level
    dev_reload.logger.setLevel(logging.INFO)
    yield messages
    dev_reload.logger.removeHandler(handler)
    dev_reload.logger.setLevel(level)


def _wait_until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_saved_edit_reloads_every_code_location(tmp_path: Path, webserver, watcher_log):
    project = copy_project(tmp_path / "project") / "analytics_dbt"
    loaded = project_fingerprint(project)
    fingerprints_taken: list[str] = []

    def fingerprint() -> str:
        fingerprints_taken.append(project_fingerprint(project))
        return fingerprints_taken[-1]

    watcher = threading.Thread(
        target=dev_reload._watch, args=([project], fingerprint, loaded, 0.05), daemon=True
    )
    watcher.start()
    # Its first fingerprint compares the files with `loaded`, once they are watched.
    assert _wait_until(lambda: fingerprints_taken)
    model = project / "models" / "staging" / "stg_orders.sql"
    original = model.read_text()

    model.write_text(original)  # saved, unchanged: nothing to reload
    assert _wait_until(lambda: "dbt project saved as it was loaded: no reload" in watcher_log)
    assert _reloads(webserver) == []

    model.write_text(original.replace("select * from final", "select * from final\n-- edited"))
    assert _wait_until(lambda: _reloads(webserver) == ["analytics"])
    watcher.join(timeout=5)
    assert not watcher.is_alive(), "the replaced code server's watcher stops"


def test_a_save_made_while_the_definitions_were_built_reloads(tmp_path: Path, webserver):
    (tmp_path / "model.sql").write_text("select 1 as id")
    loaded = project_fingerprint(tmp_path)
    (tmp_path / "model.sql").write_text("select 2 as id")  # before the watcher starts
    watcher = threading.Thread(
        target=dev_reload._watch,
        args=([tmp_path], lambda: project_fingerprint(tmp_path), loaded, 0.05),
        daemon=True,
    )
    watcher.start()
    assert _wait_until(lambda: _reloads(webserver) == ["analytics"])
    watcher.join(timeout=5)


def test_the_watcher_sees_the_files_a_parse_reads(tmp_path: Path):
    reads = dev_reload._parse_input_filter([tmp_path])
    assert reads(Change.modified, str(tmp_path / "models" / "orders.sql"))
    assert reads(Change.deleted, str(tmp_path / "models" / "orders.sql"))
    assert reads(Change.added, str(tmp_path / "profiles.yml"))
    assert not reads(Change.modified, str(tmp_path / "target" / "manifest.json"))
    assert not reads(Change.modified, str(tmp_path / "logs" / "dbt.log"))
    assert not reads(Change.modified, str(tmp_path / "models" / ".orders.sql.swp"))
    assert not reads(Change.modified, str(tmp_path.parent / "elsewhere.sql"))


def _start_watcher(project: Path, refresh) -> threading.Thread:
    watcher = threading.Thread(
        target=dev_reload._watch,
        args=([project], lambda: project_fingerprint(project), project_fingerprint(project), 0.05),
        kwargs={"refresh": refresh},
        daemon=True,
    )
    watcher.start()
    return watcher


def test_the_state_is_refreshed_before_the_reload_is_asked_for(tmp_path: Path, webserver):
    (tmp_path / "model.sql").write_text("select 1 as id")
    refreshed: list[tuple[str, int]] = []
    watcher = _start_watcher(
        tmp_path, lambda fingerprint: refreshed.append((fingerprint, len(_reloads(webserver))))
    )
    (tmp_path / "model.sql").write_text("select 2 as id, 3 as tier")
    assert _wait_until(lambda: _reloads(webserver) == ["analytics"])
    watcher.join(timeout=5)
    assert refreshed == [(project_fingerprint(tmp_path), 0)], "refreshed once, with the saved files"


def test_a_failed_refresh_still_reloads(tmp_path: Path, webserver):
    # The reloaded code server parses again and shows the dbt error in the UI.
    (tmp_path / "model.sql").write_text("select 1 as id")

    def broken_refresh(fingerprint: str) -> None:
        raise RuntimeError("dbt parse failed")

    watcher = _start_watcher(tmp_path, broken_refresh)
    (tmp_path / "model.sql").write_text("select from")
    assert _wait_until(lambda: _reloads(webserver) == ["analytics"])
    watcher.join(timeout=5)


def test_only_a_dev_code_server_watches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("DAGSTER_IS_DEV_CLI", "1")
    monkeypatch.setattr("sys.argv", ["dagster", "definitions", "validate"])
    assert not dev_reload.watch_in_dev([tmp_path], lambda: "x", "x")


def test_webserver_url_defaults_to_dg_devs_port(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(dev_reload.WEBSERVER_URL_ENV, raising=False)
    monkeypatch.setattr(
        dev_reload,
        "_ancestor_args",
        lambda: [["dagster", "code-server", "start", "--port", "4000"], ["dg", "dev", "-p", "3111"]],
    )
    assert dev_reload.webserver_url() == "http://127.0.0.1:3111"


def test_webserver_url_reads_the_dg_dev_command_of_an_ancestor(tmp_path: Path):
    # An ancestor started as `... dev -p 3222` (as `dg dev -p 3222` is) runs the code server.
    code_server = "from dagster_autopilot.dbt import dev_reload; print(dev_reload.webserver_url())"
    dg_dev = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code_server!r}])"
    env = {k: v for k, v in os.environ.items() if k != dev_reload.WEBSERVER_URL_ENV}
    printed = subprocess.run(
        [sys.executable, "-c", dg_dev, "dev", "-p", "3222"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed.strip() == "http://127.0.0.1:3222"
