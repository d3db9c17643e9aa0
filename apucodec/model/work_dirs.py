"""Work folders that a later run can tell apart from live ones, and removes when their owner is gone.

export stages a model directory in `.NAME.partial-*` beside it, quantize stages graphs in `.quantize-cpu-*` inside
the model directory and calibrates in `$TMPDIR/apucodec-int8-*`. Every exit path removes them, except one no
process can catch: SIGKILL (or the OOM killer, or a power cut) left them forever, hundreds of megabytes each.

So each work folder holds a lock file, `flock`ed by its creator for as long as the folder is in use. The kernel
drops the lock when the owner dies however it dies, and a pid that is reused later does not inherit it. Before a
command makes a work folder of a kind, it sweeps the folders of that kind in the same place: any whose lock can be
taken belongs to nobody and is removed. A folder of that kind with no lock file at all (made by a version before
this one) is removed once it is an hour old, older than any run between making it and locking it could be.

Standard library only (the runtime's profile folders use it too).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".apucodec-owner.lock"
UNLOCKED_GRACE_S = 3600.0


def _owner_gone(folder: Path) -> bool:
    """True when nobody holds `folder`'s lock (or it never had one and is older than the grace period)."""
    lock = folder / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        try:
            return time.time() - folder.stat().st_mtime > UNLOCKED_GRACE_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: its owner is alive
    finally:
        os.close(fd)
    return True


def sweep_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the work folders named `prefix*` in `parent` whose owner is gone; the folders removed."""
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        folder = Path(entry.path)
        if _owner_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


@contextlib.contextmanager
def work_dir(parent: str | Path, prefix: str) -> Iterator[Path]:
    """A new folder `parent/prefix*`, locked by this process and removed when the block ends; stale folders of the
    same kind are swept first. OSError (cannot create) propagates for the caller to phrase. A folder that is renamed
    into place instead (export's staging folder) calls `release(folder)` first, so the lock file stays behind.
    """
    parent = Path(parent)
    sweep_stale(parent, prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd = -1
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if fd >= 0:
            os.close(fd)


def release(folder: Path) -> None:
    """Take the lock file out of a work folder that is about to become a published directory."""
    (folder / LOCK_NAME).unlink(missing_ok=True)
