"""`-` as an input: standard input spooled into an unnamed temp file, so every reader gets a seekable file.

libsndfile cannot read most containers (FLAC seeks, WAV from a pipe only partly) and an .apc's size is checked against
its header before decoding, so the bytes are copied first into an O_TMPFILE in $TMPDIR — memory stays flat, and a
killed process leaves nothing. Readers open it as /proc/self/fd/N; error lines are rewritten to say `<stdin>`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.outputs import is_stdio, open_spool

STDIN_LABEL = "<stdin>"


@contextlib.contextmanager
def stdin_input(path: Path) -> Iterator[tuple[Path, str]]:
    """(path to read, name for messages): `path` itself, or standard input spooled when `path` is `-`."""
    if not is_stdio(path):
        yield path, str(path)
        return
    stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
    if sys.stdin.isatty():
        raise ApucodecError(f"{STDIN_LABEL}: standard input is a terminal; pipe a file in or name an input file")
    with contextlib.ExitStack() as stack:
        try:
            fd = stack.enter_context(open_spool())
            for block in iter(lambda: stdin.read(1 << 20), b""):
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise ApucodecError(f"{STDIN_LABEL}: cannot spool standard input ({exc.strerror or exc})") from None
        spool = f"/proc/self/fd/{fd}"
        try:
            yield Path(spool), STDIN_LABEL
        except ApucodecError as exc:
            raise ApucodecError(str(exc).replace(spool, STDIN_LABEL)) from None
