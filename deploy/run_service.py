"""Starts a service with SIGTERM and SIGINT at their default actions, then becomes it (exec).

A process started in the background by a non-interactive shell, or by a supervisor that ignored
those signals, inherits them as *ignored*, and an ignored signal stays ignored across exec: `kill
<pid>` would then do nothing. Python programs such as `dagster-daemon` only install their own
handlers for signals that are not ignored, so restoring the defaults first makes them stoppable.

    python deploy/run_service.py dagster-daemon run -w deploy/workspace.yaml
"""

import os
import signal
import sys


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: run_service.py COMMAND [ARG...]")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
