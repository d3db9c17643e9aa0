"""`apucodec listen --export DIR`: the same page as a static folder, every route written as a file.

Served by any static HTTP server (`python -m http.server -d DIR`), the page works as served by `apucodec listen`,
browser decoding included (single-threaded WASM, since a plain static server sends no cross-origin isolation
headers). Opened as file:// it shows the audio players and pictures, but browsers refuse fetch() and module
imports from file:// URLs, so the numbers and the in-browser decode need a server.
The folder is written next to its destination and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.tools.listen.site import Site


def export_site(site: Site, destination: Path) -> int:
    """Write every route of `site` under `destination` (which must not exist yet); return the files written."""
    if destination.exists():
        raise ApucodecError(f"{destination}: already exists; give a new folder for --export")
    parent = destination.parent if str(destination.parent) else Path(".")
    if not parent.is_dir():
        raise ApucodecError(f"{parent}: no such folder (the parent of --export)")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=parent))
    except OSError as exc:
        raise ApucodecError(f"{destination}: cannot write here ({exc.strerror})") from None
    try:
        routes = site.routes()
        for route in routes:
            found = site.resource(route)
            if found is None:
                raise ApucodecError(f"listen --export: {route} is missing")
            target = staging / route
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(found[0])
        staging.rename(destination)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ApucodecError(f"{destination}: cannot write the page ({exc.strerror})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(routes)
