"""Reaching Ray: a cluster's address (checked in seconds), or a local Ray of our own; Ray's failures as one line.

`ray.init` on an address that does not answer retries for minutes, `ray.init()` without one joins whatever cluster
a `ray start` on this machine left running, and an exception raised inside a Ray worker arrives wrapped in a remote
traceback; each of these is turned here into what the user asked for or a single `error:` line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

from apucodec.dataset import deps
from apucodec.errors import ApucodecError, first_line


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail in seconds, with one line, when a HOST:PORT address does not answer (ray.init would retry for minutes).

    Other address forms (auto, ray://...) are left to Ray.
    """
    if not address or "://" in address or address == "auto":
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ApucodecError(f"--ray {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), auto or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ApucodecError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def ray_session(address: str | None, actor_cpus: int = 1) -> Iterator[Any]:
    """Connect to `address`, or start a local Ray for this call; a session the caller already opened is reused.

    A local Ray gets at least `actor_cpus` logical CPUs (workers x threads), so asking for more actors than this
    machine has cores oversubscribes it, as asked, instead of leaving actors waiting for CPUs forever.
    """
    ray = deps.ray()
    if ray.is_initialized():
        yield ray
        return
    logging.getLogger("ray").setLevel(logging.ERROR)
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            # "local": always a new instance, never one a `ray start` on this machine left running
            ray.init(address="local", include_dashboard=False, num_cpus=max(os.cpu_count() or 1, actor_cpus),
                     **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ApucodecError(f"cannot start or reach {where} ({first_line(exc)})") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def ray_errors() -> Iterator[None]:
    """A failure inside Ray (an actor that cannot open the model, a worker that cannot see the corpus, a lost node)
    as one line: the original error's own message, not Ray's wrapped remote traceback."""
    import ray

    try:
        yield
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None)
        text = str(cause) if cause is not None else str(exc)
        lines = [line for line in text.strip().splitlines() if line.strip()]
        last = re.sub(r"^[\w.]*(Error|Exception): ", "", lines[-1]) if lines else type(exc).__name__
        raise ApucodecError(f"the Ray job failed: {last}") from None


