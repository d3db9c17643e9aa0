"""Helpers for tests that interrupt or kill a running CLI: is it writing yet, what did it leave, how much memory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def writing_into(pid: int, folder: Path) -> bool:
    """True once process `pid` holds a file open for writing in `folder` (an unnamed O_TMPFILE shows as '#inode')."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        links = [os.readlink(fd_dir / name) for name in os.listdir(fd_dir)]
    except OSError:
        return False
    prefix = str(folder.resolve()) + "/"
    return any(link.startswith(prefix) and ("#" in link or ".apucodec-tmp-" in link) for link in links)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dir_state(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with its sha256: 'unchanged' means exactly this."""
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())
