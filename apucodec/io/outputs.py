"""Output files that appear whole or not at all, even when the process is killed.

Every output goes through `open_output`:

* A regular file (or a name that does not exist yet) is written into an *unnamed* temp file in the target's folder
  (Linux `O_TMPFILE`) and linked into place only when the block finishes (`linkat` through /proc/self/fd to a
  random name, then `rename` over the target, so an existing file is replaced atomically). Until then the data has
  no name: SIGKILL, a power cut or an OOM kill leave nothing behind. Where O_TMPFILE is not available (other OSes,
  some filesystems) a named temp file is used instead and removed on any exception, SIGINT and SIGTERM included
  (the CLI turns SIGTERM into an exception); only SIGKILL can leave that one behind.
* A new file is created with mode 0666 minus the umask, as `open(path, "w")` would; an existing file that is
  replaced keeps its mode (a 0600 output stays 0600), and its owner where the process may set it.
* A name that can never be a file (`o.wav/`, a 304-byte component) is refused first (apucodec.io.path_names).
* `-` is standard output; an existing character device (`/dev/null`, a tty) or FIFO is written *directly*, as a
  shell redirection would: such a node is never replaced by a regular file, and nothing is staged. Other non-regular
  files (block devices, sockets) are refused. A symlink is followed: the file it points to is replaced.
* A failed write (disk full, `ulimit -f`, EIO) becomes one `ApucodecError` line naming the output and the cause.

`OutputFile.raw` is a file object over the descriptor whose `write` records an OSError instead of raising it:
libsndfile calls it from C through cffi, where a Python exception would be printed as a traceback and lost, so the
error is kept and re-raised as one line when the block ends.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.io.guarded_raw import GuardedRaw as _GuardedRaw
from apucodec.io.path_names import check_file_name, shown
from apucodec.io.unnamed_files import link_into_place, open_unnamed

STDIO = "-"


def is_stdio(path: str | Path) -> bool:
    return str(path) == STDIO


def extension(path: str | Path) -> str:
    """A path's extension as format tables key it (lower case, with the dot); none for `-`, which has no name.

    The one reading of "format from the extension": audio outputs, the .apc check and pictures all start here.
    """
    return "" if is_stdio(path) else Path(path).suffix.lower()


def describe(path: str | Path) -> str:
    """How messages name a path: `-` is standard output or input; a non-UTF-8 name with \\xNN escapes."""
    return "<stdout>" if is_stdio(path) else shown(path)


@dataclass
class OutputFile:
    """An open output: `fd`, `raw` (guarded file object), and whether it is a stream (no seeking, written in place)."""

    path: Path
    fd: int
    streaming: bool
    raw: _GuardedRaw = field(init=False)

    def __post_init__(self) -> None:
        self.raw = _GuardedRaw(self.fd)

    @property
    def name(self) -> str:
        return describe(self.path)


def _stream_kind(path: Path, expected: str = "an output file path") -> str | None:
    """'stdout', 'char', 'fifo' for a target written in place; None for a regular (or new) file; else refuse."""
    if is_stdio(path):
        return "stdout"
    check_file_name(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ApucodecError(f"{path}: cannot write here ({exc.strerror})") from None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        raise ApucodecError(f"{path}: is a directory, expected {expected}")
    if stat.S_ISCHR(mode):
        return "char"
    if stat.S_ISFIFO(mode):
        return "fifo"
    kind = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
    raise ApucodecError(f"{path}: is {kind}; refusing to write audio over it")


def check_output_path(path: str | Path, expected: str = "an output file path") -> None:
    """Fail fast (before slow work) on an output that can never be written: missing folder, directory, socket.

    The one check every output runs (audio, .apc, pictures through audio.atomic_output); `expected` names what the
    path should have been when it is a directory ("a picture file path").
    """
    check_file_name(path)
    path = Path(path)
    if _stream_kind(path, expected) is not None:
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ApucodecError(f"{path}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ApucodecError(f"{path}: cannot write here (Permission denied)")


def _phrase(path: Path, exc: OSError) -> ApucodecError:
    return ApucodecError(f"{describe(path)}: cannot write ({exc.strerror or exc})")


@contextlib.contextmanager
def _write_errors(path: Path, out: OutputFile) -> Iterator[None]:
    """Whatever the writer raised, as one line naming the file and the system's cause (libsndfile's "System error"
    and short-write assertions hide it; the raw file object kept it)."""
    try:
        yield
        out.raw.check()
    except OSError as exc:
        raise _phrase(path, out.raw.error or exc) from None
    except ApucodecError:
        raise
    except Exception:
        if out.raw.error is not None:
            raise _phrase(path, out.raw.error) from None
        raise


@contextlib.contextmanager
def open_output(path: str | Path) -> Iterator[OutputFile]:
    """An `OutputFile` for `path`: committed (linked into place) only if the block finishes without an exception."""
    check_file_name(path)
    path = Path(path)
    kind = _stream_kind(path)
    if kind is not None:
        with _open_stream(path, kind) as out:
            yield out
        return
    check_output_path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    parent = target.parent if str(target.parent) else Path(".")
    try:
        fd, named = open_unnamed(parent)
    except OSError as exc:
        raise ApucodecError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    out = OutputFile(path, fd, streaming=False)
    committed = False
    try:
        with _write_errors(path, out):
            yield out
        try:
            _keep_mode(fd, target)
            link_into_place(fd, named, target)
        except OSError as exc:
            raise _phrase(path, exc) from None
        committed = True
    finally:
        os.close(fd)
        if named is not None and not committed:
            named.unlink(missing_ok=True)


def _keep_mode(fd: int, target: Path) -> None:
    """Give the new file the mode (and, where allowed, the owner) of the regular file it is about to replace."""
    try:
        old = os.stat(target)
    except OSError:
        return  # a new file: the umask's mode, set when it was created
    if not stat.S_ISREG(old.st_mode):
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        with contextlib.suppress(OSError):  # only root (or the group's member) may; the mode is what matters
            os.fchown(fd, old.st_uid, old.st_gid)
            os.fchmod(fd, stat.S_IMODE(old.st_mode))  # chown clears set-id bits


@contextlib.contextmanager
def _open_stream(path: Path, kind: str) -> Iterator[OutputFile]:
    if kind == "stdout":
        if os.isatty(1):
            raise ApucodecError("<stdout>: is a terminal; redirect or pipe the output (e.g. '- > out.wav')")
        sys.stdout.flush()
        fd = os.dup(1)
    else:
        try:  # no O_CREAT/O_TRUNC: the node exists and stays what it is; a FIFO blocks here until a reader opens
            fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise ApucodecError(f"{path}: cannot write here ({exc.strerror})") from None
    out = OutputFile(path, fd, streaming=True)
    try:
        with _write_errors(path, out):
            yield out
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_spool(prefix_dir: str | Path | None = None) -> Iterator[int]:
    """An unnamed read/write temp file (for stdin inputs and .apc to a stream); gone when closed or killed."""
    import tempfile

    parent = Path(prefix_dir or tempfile.gettempdir())
    fd, named = open_unnamed(parent)
    if named is not None:
        named.unlink()  # POSIX keeps the open file; only a crash between the two calls could leave it
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_binary_output(path: str | Path) -> Iterator[io.BufferedRandom]:
    """A seekable, readable binary file (for writers that rewrite a header, like .apc) committed like `open_output`.

    A stream target (`-`, a FIFO, a device) cannot seek, so the bytes are staged in an unnamed temp file and copied
    to it at the end; an .apc is small (about 21 MB for six hours at the spec's 7.6 kbps).
    """
    with open_output(path) as out:
        if not out.streaming:
            fh = io.BufferedRandom(_GuardedRaw(out.fd, swallow=False))
            yield fh
            fh.flush()
            return
        with open_spool() as spool_fd:
            spool = _GuardedRaw(spool_fd, swallow=False)
            fh = io.BufferedRandom(spool)
            try:
                yield fh
                fh.flush()
                spool.check()
            except OSError as exc:
                raise ApucodecError(f"{out.name}: cannot stage the output ({exc.strerror or exc})") from None
            os.lseek(spool_fd, 0, os.SEEK_SET)
            for block in iter(lambda: os.read(spool_fd, 1 << 20), b""):
                out.raw.write(block)
                out.raw.check()
