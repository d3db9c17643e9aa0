"""The per-user cache folder: compiled NPU graphs, ONNX Runtime's optimized graphs, verified file hashes, Quark's build.

One root for all of them, so a user clears or moves apucodec's caches in one place: $APUCODEC_CACHE_DIR, else
$XDG_CACHE_HOME/apucodec, else ~/.cache/apucodec. It is outside the model directory on purpose: the bundled model
lives in site-packages, which may be read-only. Standard library only (the torch-free runtime imports it).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "APUCODEC_CACHE_DIR"


def cache_root() -> Path:
    """$APUCODEC_CACHE_DIR, else $XDG_CACHE_HOME/apucodec, else ~/.cache/apucodec."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "apucodec"
