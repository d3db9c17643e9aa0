"""The parent's end of a stage worker: the child process, its control pipe and the shared-memory step buffer.

The worker (child.py) runs under any Python with numpy and onnxruntime; this side starts it with `-E -c SOURCE`,
speaks JSON lines over its stdin and stdout, and maps the step buffer the worker sized. Every wait has a deadline,
and a worker that dies or stops answering ends the run with one line naming the stage, the pid, the interpreter
and how it ended ("killed by SIGKILL", "exited with status 1: <its last stderr line>").
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from apucodec.errors import ApucodecError, PlacementError

CHILD_SOURCE = Path(__file__).with_name("child.py")
SHM_DIR = Path("/dev/shm")
CLOSE_GRACE_S = 5.0


def how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class WorkerProcess:
    """One child process serving one stage; `request` sends a command and waits for its one-line answer."""

    def __init__(self, stage: str, python: str) -> None:
        self.stage = stage
        self.python = python
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (kept as long as the worker)
        self._pending = b""
        self._buffer: mmap.mmap | None = None
        try:
            self.proc = subprocess.Popen([python, "-E", "-c", CHILD_SOURCE.read_text()], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr, close_fds=True)
        except OSError as exc:
            self._stderr.close()
            raise PlacementError(f"{stage} worker: cannot start {python}: {exc.strerror or exc}") from exc

    @property
    def label(self) -> str:
        return f"{self.stage} worker (pid {self.proc.pid}, {self.python})"

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _last_stderr_line(self) -> str:
        lines = [line.strip() for line in self.stderr_text().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def _dead(self, what: str) -> ApucodecError:
        try:
            returncode = self.proc.wait(timeout=CLOSE_GRACE_S)
        except subprocess.TimeoutExpired:
            returncode = None
        last = self._last_stderr_line()
        detail = f": {last}" if last and returncode and returncode > 0 else ""
        return PlacementError(f"{self.label} {what}: {how_it_ended(returncode)}{detail}")

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one command, return the worker's answer; ApucodecError if it dies or misses the deadline."""
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._dead("died") from None
        return self._read_reply(timeout)

    def _read_reply(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                raise ApucodecError(f"{self.label} hung: no answer within {timeout:g} s; killed")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._dead("died")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            self._kill()
            raise ApucodecError(f"{self.label} answered garbage: {line[:80]!r}") from None

    def map_buffer(self, path: Path, size: int) -> memoryview:
        with open(path, "r+b") as fh:
            self._buffer = mmap.mmap(fh.fileno(), size)
        return memoryview(self._buffer)

    def close(self) -> None:
        """Ask the worker to exit, then make sure it has; release the step buffer and the stderr file."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"cmd": "close"}\n')
                self.proc.stdin.flush()
                self.proc.stdin.close()
                self.proc.wait(timeout=CLOSE_GRACE_S)
            except (OSError, subprocess.TimeoutExpired):
                self._kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream and not stream.closed:
                with contextlib.suppress(OSError):  # unflushed bytes to a dead worker: nothing to deliver
                    stream.close()
        if self._buffer is not None:
            with contextlib.suppress(BufferError):  # a view is still held; the mapping goes with the process
                self._buffer.close()
            self._buffer = None
        self._stderr.close()


def shared_memory_file(stage: str) -> Path:
    """An empty file for the step buffer: in /dev/shm (RAM) where there is one, else the temp folder."""
    folder = SHM_DIR if SHM_DIR.is_dir() and os.access(SHM_DIR, os.W_OK) else None
    fd, name = tempfile.mkstemp(prefix=f"apucodec-{stage}-", suffix=".shm", dir=folder)
    os.close(fd)
    return Path(name)
