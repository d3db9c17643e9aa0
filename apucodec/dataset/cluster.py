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
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from apucodec.dataset import deps
from apucodec.dataset.ray_logs import AUTH_FAILURE, RayLogFilter, filtered_stderr
from apucodec.errors import ApucodecError, first_line

NO_FAILURE_HANDLER = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"


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
    """Connect to `address`, or start a private local Ray for this call (apucodec.dataset.local_ray: loopback,
    token auth, its own temp folder, stopped with the driver); a session the caller already opened is reused.

    A local Ray gets at least `actor_cpus` logical CPUs (workers x threads), so asking for more actors than this
    machine has cores oversubscribes it, as asked, instead of leaving actors waiting for CPUs forever.
    """
    with _own_sigterm():
        ray = deps.ray()
    if ray.is_initialized():
        yield ray
        return
    logging.getLogger("ray").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        logs = stack.enter_context(filtered_stderr())  # Ray's C++ log lines off the terminal, read for auth errors
        if address:
            target, where = address, f"the Ray cluster at {address}"
        else:
            from apucodec.dataset.local_ray import local_ray

            head = stack.enter_context(local_ray(max(os.cpu_count() or 1, actor_cpus)))
            stack.enter_context(_environment(head.env))
            stack.enter_context(_single_node(ray))
            target, where = head.address, "a local Ray"
        _init(ray, target, where, logs)
        stack.callback(ray.shutdown)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        yield ray


def _init(ray: Any, address: str, where: str, logs: RayLogFilter) -> None:
    """ray.init, keeping this process's SIGTERM handler (Ray's own exits with status 15 and a C++ stack); a refused
    token is said as such (Ray itself only says "Failed to connect")."""
    try:
        with _own_sigterm(ray):
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if logs.auth_failure or AUTH_FAILURE.search(str(exc)):
            raise ApucodecError(f"{where} refused this connection: it needs an authentication token (set "
                                "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH, or RAY_AUTH_TOKEN, to the cluster's "
                                "token)") from None
        raise ApucodecError(f"cannot start or reach {where} ({first_line(exc)})") from None


@contextlib.contextmanager
def _own_sigterm(ray: Any = None) -> Iterator[None]:
    """Keep this process's SIGTERM handler (the CLI's one line and exit 143) while Ray starts up.

    Ray replaces it twice: its C++ core installs abseil's failure-signal handler (a stack dump on stderr, then abort;
    RAY_DISABLE_FAILURE_SIGNAL_HANDLER=1 turns that off), and ray.init installs a Python handler that calls
    sys.exit(15) (`ray._private.utils.set_sigterm_handler`, made a no-op for the call). The handler is set again
    on the way out in case anything else replaced it.
    """
    handler = signal.getsignal(signal.SIGTERM)
    saved_env = os.environ.get(NO_FAILURE_HANDLER)
    os.environ[NO_FAILURE_HANDLER] = "1"
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    setter = getattr(utils, "set_sigterm_handler", None)
    if setter is not None:
        utils.set_sigterm_handler = lambda _handler: None
    try:
        yield
    finally:
        if setter is not None:
            utils.set_sigterm_handler = setter
        if saved_env is None:
            os.environ.pop(NO_FAILURE_HANDLER, None)
        else:
            os.environ[NO_FAILURE_HANDLER] = saved_env
        if threading.current_thread() is threading.main_thread() and \
                (callable(handler) or handler in (signal.SIG_DFL, signal.SIG_IGN)):
            signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` for the block (the driver reads Ray's token and temp dir from it), then restored."""
    saved = {key: os.environ.get(key) for key in (*values, "RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    os.environ.update(values)
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.pop("RAY_AUTH_TOKEN", None)  # the token file of our head wins over a token meant for another
    _reload_auth()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reload_auth()


def _reload_auth() -> None:
    """Ray's C++ side reads RAY_AUTH_MODE and the token once and caches them (when `ray` is imported, possibly long
    before this call); make it read them again. These are the calls Ray's own auth tests use to switch modes."""
    with contextlib.suppress(ImportError, AttributeError):
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def _single_node(ray: Any) -> Iterator[None]:
    """The driver's side of local_ray's loopback switch: Ray read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it was
    imported, possibly before this call, so its constant is set for the block (then restored)."""
    constants = ray._private.ray_constants
    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved


@contextlib.contextmanager
def ray_errors() -> Iterator[None]:
    """A failure inside Ray (an actor that cannot open the model, a worker that cannot see the corpus, a lost node)
    as one line: the original error's own message, not Ray's wrapped remote traceback."""
    import ray

    try:
        yield
    except BaseException as exc:
        interrupt = _interrupt_behind(exc)
        if interrupt is not None and interrupt is not exc:
            raise interrupt from None  # SIGTERM / Ctrl-C that Ray caught inside a blocking call and wrapped
        if not isinstance(exc, ray.exceptions.RayError):
            raise
        cause = getattr(exc, "cause", None)
        text = str(cause) if cause is not None else str(exc)
        lines = [line for line in text.strip().splitlines() if line.strip()]
        last = re.sub(r"^[\w.]*(Error|Exception): ", "", lines[-1]) if lines else type(exc).__name__
        raise ApucodecError(f"the Ray job failed: {last}") from None


def _interrupt_behind(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or SIGTERM exception (a BaseException that is not an Exception) that `exc` was raised
    from, if any: Ray checks signals inside its blocking calls and re-raises them wrapped in its own errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if not isinstance(current, Exception) and not isinstance(current, (SystemExit, GeneratorExit)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
