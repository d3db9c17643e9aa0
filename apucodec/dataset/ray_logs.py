"""Ray's C++ log lines kept off the user's terminal, and read for what they say about authentication.

The driver's Ray core worker writes glog-style lines straight to file descriptor 2 from C++ threads: `E ...
core_worker.cc` warnings about Ray Data's own actors on a run that succeeds, and, against a cluster that wants a
token, twenty `W ... gcs_client.cc: ... InvalidAuthToken` lines before ray.init gives up with a bare "Failed to
connect". Neither Python logging nor RAY_BACKEND_LOG_LEVEL (which announces itself with a line of its own) stops
them, so for the Ray session fd 2 goes through a pipe: lines in Ray's C++ format are dropped (and remembered, so
an authentication failure can be named), everything else (progress, our own messages) passes through unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator

RAY_CPP_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [IWEF] \d+ \d+\] ")
AUTH_FAILURE = re.compile(r"InvalidAuthToken|UNAUTHENTICATED|Unauthenticated|[Aa]uthentication token")


class RayLogFilter:
    """What was dropped (the last lines, for diagnosis) while fd 2 was filtered."""

    def __init__(self) -> None:
        self.dropped: list[str] = []

    @property
    def auth_failure(self) -> bool:
        return any(AUTH_FAILURE.search(line) for line in self.dropped)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[RayLogFilter]:
    """Route fd 2 through a filter thread for the block (see the module docstring); restored however it ends."""
    found = RayLogFilter()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError):
        yield found  # no fd 2 to filter (an embedding without one): nothing to do
        return

    def pump() -> None:
        if hasattr(signal, "pthread_sigmask"):  # signals are the main thread's business (see cluster.py)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if RAY_CPP_LINE.match(line):
                    found.dropped = [*found.dropped[-50:], line.decode(errors="replace")]
                    continue
                with contextlib.suppress(OSError):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="apucodec-ray-stderr", daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield found
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer is gone once Ray's threads stop: the pump sees end-of-file
        thread.join(timeout=2.0)
        os.close(saved)
