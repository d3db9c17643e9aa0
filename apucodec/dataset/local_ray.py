"""The local Ray that `tokenize` starts when no cluster is named: loopback only, token-authenticated, private, and
gone when the driver is gone, however it goes.

`ray.init()` alone started a head that listened on the machine's network address (a reachable Ray is remote code
execution for anyone on the network), wrote `$TMPDIR/ray/session_*` and left it there, and, after a SIGKILL of the
driver, left its helpers running for a minute. Here instead:

* Loopback: Ray turns `--node-ip-address 127.0.0.1` back into the routable address unless it is told the node is a
  single-machine Ray (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the switch Ray itself uses on laptops, which also refuses
  other nodes joining). Every server of the head (GCS, raylet, object manager, agents, workers) then binds
  127.0.0.1.
* Token authentication (RAY_AUTH_MODE=token) with a fresh random token in a 0600 file of our own; nothing reads or
  writes ~/.ray.
* Its own temp folder (`--temp-dir`, RAY_TMPDIR) holding the token, logs and session, removed at the end.
* A watchdog: a small process in its own session starts `ray start --head --block` in a new process group and
  waits for end-of-file on a pipe whose other end only the driver holds. The kernel closes that pipe when the
  driver exits for any reason, SIGKILL included; the watchdog then stops every process of the head's session (TERM,
  then KILL after a few seconds; Ray puts each worker in a process group of its own, but they stay in the session
  the head was started in) and removes the temp folder. A normal exit closes the pipe too and waits for it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from apucodec.errors import ApucodecError

START_TIMEOUT_S = 120.0
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

# The watchdog (run with `python -c`): argv = temp dir, then the head's command line. Standard library only.
WATCHDOG = r"""
import os, shutil, signal, subprocess, sys, time
tmp, cmd = sys.argv[1], sys.argv[2:]
with open(os.path.join(tmp, "head.log"), "wb") as log:
    head = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
try:
    while os.read(0, 4096):
        pass
except OSError:
    pass
def members():
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == head.pid and fields[0] != "Z":
            found.append(int(name))
    return found
for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 5.0)):
    end = time.monotonic() + wait
    pids = members()
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    while pids and time.monotonic() < end:
        time.sleep(0.1)
        head.poll()
        pids = members()
    if not pids:
        break
shutil.rmtree(tmp, ignore_errors=True)
"""


@dataclass
class LocalRay:
    """A running private head: where it listens and the environment a driver needs to reach it."""

    address: str
    temp_dir: Path
    env: dict[str, str]


# Ray puts AF_UNIX sockets at TEMP/session_<date>_<pid>/sockets/plasma_store (about 85 bytes below TEMP's parent)
# and a socket path may not exceed 107 bytes: a long $TMPDIR would make the head fail to start.
UNIX_PATH_MAX = 107
RAY_SOCKET_SUFFIX = 86


def _short_temp_base() -> str:
    """$TMPDIR when Ray's socket paths fit under it, else /tmp (then /dev/shm)."""
    for base in (tempfile.gettempdir(), "/tmp", "/dev/shm"):
        if len(os.fsencode(base)) + RAY_SOCKET_SUFFIX <= UNIX_PATH_MAX and os.access(base, os.W_OK | os.X_OK):
            return base
    return tempfile.gettempdir()


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, watchdog: subprocess.Popen, temp_dir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if watchdog.poll() is not None or time.monotonic() > deadline:
            log = temp_dir / "head.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
            raise ApucodecError(f"cannot start a local Ray ({tail[0] if tail else 'the head did not come up'})")
        time.sleep(0.25)


def spawn_watchdog(temp_dir: Path, command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """(The watchdog running `command` in a session of its own, the pipe end whose closing stops it all)."""
    read_end, write_end = os.pipe()
    try:
        watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(temp_dir), *command], stdin=read_end,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
    except OSError:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return watchdog, write_end


@contextlib.contextmanager
def local_ray(num_cpus: int) -> Iterator[LocalRay]:
    """Start a private head (see the module docstring) for the block; stopped and removed when it ends."""
    temp_dir = Path(tempfile.mkdtemp(prefix="apucodec-ray-", dir=_short_temp_base()))
    token = temp_dir / "token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, secrets.token_hex(32).encode())
    os.close(fd)
    port = _free_loopback_port()
    env = {LOCAL_ONLY_ENV: "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_TMPDIR": str(temp_dir), "RAY_USAGE_STATS_ENABLED": "0"}
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    head = [*ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
            "--num-cpus", str(num_cpus), "--include-dashboard=false", "--disable-usage-stats",
            "--temp-dir", str(temp_dir), "--block"]
    env_all = {**os.environ, **env}
    env_all.pop("RAY_ADDRESS", None)  # never join whatever cluster the environment points at
    try:
        watchdog, write_end = spawn_watchdog(temp_dir, head, env_all)
    except OSError as exc:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise ApucodecError(f"cannot start a local Ray ({exc.strerror or exc})") from None
    try:
        _wait_for(port, watchdog, temp_dir)
        yield LocalRay(f"127.0.0.1:{port}", temp_dir, env)
    finally:
        os.close(write_end)  # the watchdog stops the head and removes the temp folder
        with contextlib.suppress(subprocess.TimeoutExpired):
            watchdog.wait(timeout=30)
