"""Files with no name until they are complete: an O_TMPFILE in the target's folder, named at the end with
linkat(AT_EMPTY_PATH) (or the /proc/self/fd link, or a copy), so a process killed mid-write leaves nothing behind.
Where unnamed files are unsupported, a named temp file with the umask's mode stands in (removed on any exit but
SIGKILL)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def open_unnamed(parent: Path) -> tuple[int, Path | None]:
    """(fd, None) for an O_TMPFILE in `parent`, else (fd, name) of a named temp file with the umask's mode."""
    flag = getattr(os, "O_TMPFILE", 0)
    if flag and os.path.isdir("/proc/self/fd"):
        try:
            return os.open(parent, flag | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o666), None
        except OSError as exc:
            if exc.errno not in (95, 21, 22):  # EOPNOTSUPP, EISDIR (old kernels), EINVAL: fall back
                raise
    for _ in range(100):
        name = parent / f".apucodec-tmp-{secrets.token_hex(6)}"
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        return fd, name
    raise FileExistsError(f"no free temp name in {parent}")


def _linkat_empty_path(fd: int, name: Path) -> None:
    """linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH): names an O_TMPFILE without going through /proc."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.linkat(fd, b"", -100, os.fsencode(name), 0x1000) != 0:  # AT_FDCWD, AT_EMPTY_PATH
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _name_unnamed(fd: int, name: Path) -> None:
    """Give the unnamed file `name`: AT_EMPTY_PATH, else the /proc/self/fd link, else a copy.

    AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on older kernels; the /proc route fails with EXDEV where /proc belongs
    to another mount namespace (some sandboxes). The copy keeps correctness there: only while it runs, at the very
    end, does a named temp file exist.
    """
    try:
        _linkat_empty_path(fd, name)
        return
    except (OSError, AttributeError):
        pass
    try:
        os.link(f"/proc/self/fd/{fd}", name, follow_symlinks=True)
        return
    except FileExistsError:
        raise
    except OSError:
        pass
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        os.fchmod(out, os.fstat(fd).st_mode & 0o7777)
        size, offset = os.fstat(fd).st_size, 0
        while offset < size:
            sent = os.sendfile(out, fd, offset, size - offset)
            if sent == 0:
                raise OSError(5, "short copy")
            offset += sent
    except BaseException:
        os.close(out)
        name.unlink(missing_ok=True)
        raise
    os.close(out)


def link_into_place(fd: int, named: Path | None, target: Path) -> None:
    parent = target.parent if str(target.parent) else Path(".")
    if named is None:
        for _ in range(100):
            named = parent / f".apucodec-tmp-{secrets.token_hex(6)}"
            try:
                _name_unnamed(fd, named)
                break
            except FileExistsError:
                continue
    assert named is not None
    try:
        os.replace(named, target)
    except BaseException:
        named.unlink(missing_ok=True)
        raise
