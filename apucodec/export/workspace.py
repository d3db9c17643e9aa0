"""The output folder: checked before any work, built in a hidden temp folder beside it, renamed into place at the end.

Nothing half-written is ever visible under the requested name: a failed or interrupted export removes its temp
folder, and replacing an existing folder (--force) swaps it out only once the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apucodec.errors import ApucodecError


def check_destination(out: Path, force: bool) -> None:
    """Refuse a destination that is a file, or a non-empty folder unless `force`."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ApucodecError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ApucodecError(f"{out}: folder exists and is not empty; pass --force to replace it")


def _oserror(out: Path, exc: OSError) -> ApucodecError:
    return ApucodecError(f"{out}: cannot write the model directory ({exc.strerror or exc})")


@contextmanager
def staging_folder(out: Path, force: bool) -> Iterator[Path]:
    """Yield an empty temp folder beside `out`; on normal exit it becomes `out` (replacing it if allowed)."""
    check_destination(out, force)
    existing = next(p for p in (out.parent, *out.parent.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise ApucodecError(f"{out}: cannot write the model directory ({existing} is not a folder)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise _oserror(out, exc) from None
    try:
        yield stage
        os.chmod(stage, 0o755)  # mkdtemp makes it 0700; a model folder is meant to be shared
        _publish(stage, out, force)
    except OSError as exc:
        raise _oserror(out, exc) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out: Path, force: bool) -> None:
    check_destination(out, force)  # it may have changed during the export
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "content")
    try:
        os.replace(stage, out)
    except OSError:
        if old is not None:
            os.replace(old / "content", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
