"""`deploy/run_service.py`: a service started with SIGTERM and SIGINT ignored (as a background job
inherits them) still stops on `kill <pid>` when started through it, and does not without it."""

import signal
import subprocess
import sys

import pytest
from deployment import as_a_background_job, ignored_signals
from harness import REPO_ROOT

RUN_SERVICE = REPO_ROOT / "deploy" / "run_service.py"
SERVICE = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]


def _start(command: list[str]) -> subprocess.Popen:
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, preexec_fn=as_a_background_job
    )
    assert process.stdout.readline() == "up\n"
    return process


def _stops_on_sigterm(process: subprocess.Popen) -> bool:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
        return False
    finally:
        process.stdout.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_through_the_wrapper_the_stop_signals_have_their_default_action(signum):
    process = _start([sys.executable, str(RUN_SERVICE), *SERVICE])
    try:
        assert signum not in ignored_signals(process.pid)
        process.send_signal(signum)
        assert process.wait(timeout=5) != 0
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()


def test_without_the_wrapper_sigterm_is_ignored_and_with_it_the_service_stops():
    bare = _start(SERVICE)
    assert signal.SIGTERM in ignored_signals(bare.pid)
    assert not _stops_on_sigterm(bare)

    wrapped = _start([sys.executable, str(RUN_SERVICE), *SERVICE])
    assert _stops_on_sigterm(wrapped)
    assert wrapped.returncode == -signal.SIGTERM


def test_usage_without_a_command():
    result = subprocess.run(
        [sys.executable, str(RUN_SERVICE)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "usage" in result.stderr
