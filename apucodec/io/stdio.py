"""`-`, a FIFO or a process substitution as an input: spooled once into an unnamed temp file, so every reader gets
a seekable file.

A non-seekable input can be read exactly once: probing it (sf.info) and then reading it opened the FIFO twice and
hung on the second open, waiting for a writer that had already gone. Anything that is not a regular file (`-`,
`<(cmd)` = /dev/fd/N, a named FIFO) is therefore read once, here, into the spool.

libsndfile cannot read most containers (FLAC seeks, WAV from a pipe only partly) and an .apc's size is checked against
its header before decoding, so the bytes are copied first into an O_TMPFILE in $TMPDIR — memory stays flat, and a
killed process leaves nothing. Readers open it as /proc/self/fd/N; error lines are rewritten to say `<stdin>`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.io.outputs import is_stdio, open_spool

STDIN_LABEL = "<stdin>"


@contextlib.contextmanager
def stdin_input(path: Path) -> Iterator[tuple[Path, str]]:
    """(path to read, name for messages): `path` itself, or its bytes spooled when it is `-` or not a regular file."""
    if not is_stdio(path):
        if not _is_stream(path):
            yield path, str(path)
            return
        with _opened(path) as source, _spooled(source, str(path)) as spool:
            yield spool, str(path)
        return
    stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
    if sys.stdin.isatty():
        raise ApucodecError(f"{STDIN_LABEL}: standard input is a terminal; pipe a file in or name an input file")
    with _spooled(stdin, STDIN_LABEL) as spool:
        yield spool, STDIN_LABEL


def _is_stream(path: Path) -> bool:
    """A FIFO or socket (`<(cmd)` is /dev/fd/N, a pipe): readable once, not seekable. Character devices are left
    to the reader: /dev/zero would spool forever, and libsndfile refuses it at once."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # missing or unreadable: the reader's own check says so in one line
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[object]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below; the spool is what the reader gets)
    except OSError as exc:
        raise ApucodecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        yield fh


@contextlib.contextmanager
def _spooled(stdin: object, label: str) -> Iterator[Path]:
    with contextlib.ExitStack() as stack:
        try:
            fd = stack.enter_context(open_spool())
            for block in iter(lambda: stdin.read(1 << 20), b""):
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise ApucodecError(f"{label}: cannot read it into a temp file ({exc.strerror or exc})") from None
        spool = f"/proc/self/fd/{fd}"
        try:
            yield Path(spool)
        except ApucodecError as exc:
            raise ApucodecError(str(exc).replace(spool, label)) from None
