"""The local Ray that `tokenize` starts is private and leaves nothing behind (hardening round three, class 7).

It listens on loopback only, with token authentication and its own temp folder; SIGTERM ends the command with one
line and exit 143 (no Ray C++ stack); SIGKILL of the driver leaves no Ray helper running; a successful run leaves
no `$TMPDIR/ray/session_*` and prints no Ray `E ... core_worker.cc` line; a cluster that wants a token says so.

The mechanisms are tested fast without Ray (the watchdog with a stand-in head, the stderr filter); the command
itself, with a real Ray, in the slow tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from tests.audio_factory import mixture
from tests.tokenize_helpers import cli_env

LOOPBACK = ("127.", "::ffff:127.", "::1")


# ---- fast: the mechanisms ---------------------------------------------------------------------------------------

STAND_IN = textwrap.dedent("""
    import os, subprocess, sys, time
    from pathlib import Path
    from apucodec.dataset.local_ray import spawn_watchdog
    temp = Path(sys.argv[1])
    # a 'head' whose child leaves for a process group of its own, as Ray's workers do
    head = [sys.executable, "-c", "import os, subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import os, time; os.setpgrp(); time.sleep(600)']); "
            "time.sleep(600)"]
    watchdog, pipe = spawn_watchdog(temp, head, dict(os.environ))
    print(watchdog.pid, flush=True)
    time.sleep(600)
""")


def _session_members(sid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(name))
    return found


def test_sigkill_of_the_driver_stops_the_whole_head_session(tmp_path):
    temp = tmp_path / "apucodec-ray-x"
    temp.mkdir()
    driver = subprocess.Popen([sys.executable, "-c", STAND_IN, str(temp)], stdout=subprocess.PIPE, text=True,
                              env=cli_env())
    watchdog_pid = int(driver.stdout.readline())
    deadline = time.monotonic() + 30
    head_sid = None
    while time.monotonic() < deadline and head_sid is None:  # the head is the watchdog's child, a session leader
        for name in os.listdir("/proc"):
            if name.isdigit():
                with_parent = Path(f"/proc/{name}/stat")
                try:
                    fields = with_parent.read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                if int(fields[1]) == watchdog_pid and len(_session_members(int(name))) >= 2:
                    head_sid = int(name)
        time.sleep(0.1)
    assert head_sid is not None, "the stand-in head did not start its child"
    driver.kill()
    driver.wait()
    driver.stdout.close()
    deadline = time.monotonic() + 20
    while (_session_members(head_sid) or temp.exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_members(head_sid) == [], "a process of the head's session outlived the driver"
    assert not temp.exists()


def test_ray_cpp_log_lines_are_filtered_and_read_for_auth_failures(capfd):
    from apucodec.dataset.ray_logs import filtered_stderr

    with filtered_stderr() as logs:
        os.write(2, b"[2026-12-07 20:00:54,903 W 31150 31150] gcs_client.cc:210: Failed to get cluster ID from GCS "
                    b"server: Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing\n")
        os.write(2, b"[2026-12-07 19:58:13,026 E 27061 27061] core_worker.cc:2465: Actor with class name\n")
        os.write(2, b"progress: 3 files\n")
    assert logs.auth_failure
    err = capfd.readouterr().err
    assert err == "progress: 3 files\n"


def test_a_wrapped_interrupt_is_found_behind_rays_error():
    from apucodec.dataset.cluster import _interrupt_behind

    class Terminated(BaseException):
        pass

    try:
        try:
            raise Terminated
        except Terminated as inner:
            raise RuntimeError("ray.get failed") from inner
    except RuntimeError as outer:
        assert isinstance(_interrupt_behind(outer), Terminated)
    assert _interrupt_behind(ValueError("plain")) is None


# ---- slow: the real command -------------------------------------------------------------------------------------

@pytest.fixture()
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(4):
        sf.write(folder / f"c{i}.wav", mixture(0.5 + 0.3 * i, seed=i), 44100)
    return folder


@pytest.fixture()
def temp() -> Iterator[Path]:
    """A short $TMPDIR of the test's own (Ray's socket paths under a pytest tmp_path would be too long)."""
    folder = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _env(temp: Path) -> dict[str, str]:
    env = {k: v for k, v in cli_env().items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    return {**env, "TMPDIR": str(temp)}


def _head_pids(temp: Path) -> list[int]:
    """Processes of the private Ray: their command line names its temp folder under our TMPDIR."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if str(temp).encode() + b"/apucodec-ray-" in cmdline:
                pids.append(int(name))
    return pids


def _listening(pids: list[int]) -> list[tuple[int, str]]:
    """(pid, local address) of every listening TCP socket the processes hold, from /proc/net/tcp{,6}."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes[link[8:-1]] = pid
        except OSError:
            continue
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] != "0A" or parts[9] not in inodes:  # 0A: LISTEN
                continue
            hexaddr, port = parts[1].split(":")
            raw = bytes.fromhex(hexaddr)
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # /proc prints host-order words
            if width == 8:
                address = ".".join(str(b) for b in words)
            elif words[:12] == b"\0" * 10 + b"\xff\xff":
                address = "::ffff:" + ".".join(str(b) for b in words[12:])
            else:
                address = ":".join(words[i:i + 2].hex() for i in range(0, 16, 2))
                address = "::1" if address == "0000:0000:0000:0000:0000:0000:0000:0001" else address
            found.append((inodes[parts[9]], f"{address}:{int(port, 16)}"))
    return found


def _tokenize(corpus: Path, tmp_path: Path, model: Path, temp: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "apucodec", "tokenize", str(corpus), str(tmp_path / "out"), "--model",
               str(model)]
    return subprocess.Popen(command, env=_env(temp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_head(temp: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(b"raylet" in Path(f"/proc/{p}/cmdline").read_bytes() for p in _head_pids(temp)
               if Path(f"/proc/{p}/cmdline").exists()):
            return
        time.sleep(0.2)
    pytest.fail("the local Ray did not start")


def _gone(temp: Path, timeout: float = 25.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while _head_pids(temp) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _head_pids(temp)


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only_and_leaves_nothing(corpus, tmp_path, runtime_model, temp):
    proc = _tokenize(corpus, tmp_path, runtime_model, temp)
    sockets: set[tuple[int, str]] = set()
    while proc.poll() is None:
        sockets.update(_listening([*_head_pids(temp), proc.pid]))  # the driver listens too
        time.sleep(0.3)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    print("listening sockets of the local Ray:", *sorted(sockets, key=lambda s: s[1]), sep="\n  ")
    assert len(sockets) >= 3, sockets  # GCS, raylet, object manager at least
    assert all(address.startswith(LOOPBACK) for _, address in sockets), sockets
    assert "tokenize: 4 encoded" in out
    assert err.strip() == "" or all(not line.startswith("[") for line in err.splitlines()), err
    assert "core_worker.cc" not in err
    leftovers = sorted(p.name for p in temp.iterdir() if p.name != ".ses")  # .ses: onnxruntime's telemetry file
    assert leftovers == [], leftovers  # no ray/session_*, no apucodec-ray-*
    assert _gone(temp, 5) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_signalled_driver_leaves_no_ray_behind(corpus, tmp_path, runtime_model, sig, temp):
    proc = _tokenize(corpus, tmp_path, runtime_model, temp)
    _wait_for_head(temp, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err
        assert err.strip().splitlines() == ["terminated (SIGTERM): no output was written"], err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert _gone(temp) == [], "Ray helpers outlived the driver"
    assert sorted(p.name for p in temp.iterdir() if p.name != ".ses") == []


@pytest.mark.slow
def test_a_cluster_that_needs_a_token_says_so(corpus, tmp_path, runtime_model, temp):
    from tests.tokenize_helpers import ray_head

    with ray_head() as address:
        env = {k: v for k, v in _env(temp).items() if not k.startswith("RAY_AUTH")}
        proc = subprocess.run([sys.executable, "-m", "apucodec", "tokenize", str(corpus), str(tmp_path / "out"),
                               "--ray", address, "--model", str(runtime_model)], env=env, capture_output=True,
                              text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs an authentication token" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))
