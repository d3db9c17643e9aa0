"""sha256 checks of model files that skip the hashing when the file has not changed since it last matched.

Why: every command checks every file of the model directory against the manifest before using it, and hashing is
a fixed start-up cost that grows with the model: the default 32.4M model's graphs are ~320 MB, 0.4 s of a
1-second clip's `apucodec run`. A file that matched before and has not been touched since still matches. The
record of a match keeps the file's device, inode, size, mtime and ctime. The kernel sets ctime on every change to
the file, and a user cannot set it back, so a changed file always misses and is hashed again. This is the check
git's index makes. It guards against corruption and mix-ups, as the hash check itself does; it is no defence
against someone who can also rewrite the manifest.

Records live under the user cache (apucodec/model/user_cache.py), `verified/`, one small JSON file per path, written
atomically. A missing, unreadable or unwritable record only means hashing as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from apucodec.model.user_cache import cache_root

SUBDIR = "verified"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _record_path(path: Path, root: Path | None) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return (root or cache_root()) / SUBDIR / f"{key}.json"


def matches_sha256(path: str | Path, expected: str, root: Path | None = None) -> bool:
    """Does `path` hash to `expected`? Answered from the record of an earlier match when the file is unchanged."""
    path = Path(path)
    record = _record_path(path, root)
    identity = _identity(path)
    with contextlib.suppress(OSError, ValueError, TypeError, RecursionError):
        saved = json.loads(record.read_text())
        if saved.get("identity") == identity and saved.get("sha256") == expected:
            return True
    if sha256_file(path) != expected:
        return False
    with contextlib.suppress(OSError):
        record.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{record.name}.", dir=record.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"path": str(path.resolve()), "identity": identity, "sha256": expected}, fh)
            os.replace(tmp, record)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return True
