"""The per-user cache folder: compiled NPU graphs, ONNX Runtime's optimized graphs, verified file hashes, Quark's build.

One root for all of them, so a user clears or moves apucodec's caches in one place: $APUCODEC_CACHE_DIR, else
$XDG_CACHE_HOME/apucodec, else ~/.cache/apucodec. It is outside the model directory on purpose: the bundled model
lives in site-packages, which may be read-only. Standard library only (the torch-free runtime imports it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

CACHE_ENV = "APUCODEC_CACHE_DIR"
_noted: set[str] = set()


def cache_root() -> Path:
    """$APUCODEC_CACHE_DIR, else $XDG_CACHE_HOME/apucodec, else ~/.cache/apucodec."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "apucodec"
    except RuntimeError:  # no HOME and no passwd entry: a cache path that can never be written, so every use misses
        return Path("/nonexistent-home/.cache/apucodec")


def note_cache_unusable(what: str, reason: str) -> None:
    """Say once per process that a cache is skipped. A cache only ever saves time: a full filesystem, a HOME the
    user cannot write (`sudo -u` keeping the caller's HOME), or a file that does not read back is never fatal."""
    if what in _noted:
        return
    _noted.add(what)
    logging.getLogger("apucodec").warning("note: %s skipped (%s); running without it", what, reason)
