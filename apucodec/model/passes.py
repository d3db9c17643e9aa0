"""What every model-directory pass shares: a staging folder, a step log, and one commit that is all or nothing.

There are two kinds of pass, and both are staged the same way (`staging_folder`):

* export (checkpoint -> new model directory): every file and the manifest are written into a hidden folder beside
  the destination (`new_model_dir`), which is renamed into place once complete; replacing an existing directory
  (--force) swaps it out only then.
* quantization (model directory -> the same directory with more graphs): graphs are made and scored in a hidden
  folder inside the directory (`update_model_dir`), then moved in with the manifest edit as one transaction
  (`install_files`): on any failure the previous files and manifest are put back.

Either way nothing half-written is ever visible under a model directory's name, a failed or interrupted pass removes
its staging folder, and a filesystem error ends in one line naming the directory. Torch-free.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.model.directory import ModelDir
from apucodec.model.work_dirs import release

Log = Callable[[str], None]


class StepLog:
    """Per-step wall times (for the manifest) and progress lines: `[export] step: result (1.2 s)` with a prefix,
    the bare message without one (the quantization passes' status lines)."""

    def __init__(self, log: Log | None, prefix: str | None = None) -> None:
        self._log = log or (lambda message: None)
        self._prefix = f"[{prefix}] " if prefix else ""
        self.seconds: dict[str, float] = {}

    def info(self, message: str) -> None:
        self._log(f"{self._prefix}{message}")

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the body's wall time to `seconds[name]`, saying nothing."""
        start = time.perf_counter()
        yield
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Time a step and say what it made: the body appends a short summary of its result to the yielded list."""
        summary: list[str] = []
        start = time.perf_counter()
        with self.timed(name):
            yield summary
        detail = f": {'; '.join(summary)}" if summary else ""
        self.info(f"{name}{detail} ({time.perf_counter() - start:.1f} s)")


@contextmanager
def staging_folder(parent: Path, prefix: str, target: Path, what: str) -> Iterator[Path]:
    """A new hidden folder in `parent`, removed when the block ends however it ends (and, after a SIGKILL, by the
    next pass that stages there: apucodec.model.work_dirs); failing to make it is one line, `{target}: cannot {what}
    (reason)`."""
    from apucodec.model.work_dirs import work_dir

    with contextlib.ExitStack() as stack:
        try:
            parent.mkdir(parents=True, exist_ok=True)
            folder = stack.enter_context(work_dir(parent, prefix))  # locked; a killed run's folder is swept later
        except OSError as exc:
            raise ApucodecError(f"{target}: cannot {what} ({exc.strerror or exc})") from None
        yield folder


# ---- export: a new model directory ------------------------------------------------------------------------------

def check_destination(out: Path, force: bool) -> None:
    """Refuse a destination that is a file, or a non-empty folder unless `force` and it is a model directory.

    `--force` replaces a folder wholesale, so it may only ever replace what export itself makes: a folder with an
    apucodec manifest.json (or an empty one). `export --out ~/Music --force` once deleted a folder of unrelated
    files; that is refused now, naming the folder.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ApucodecError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ApucodecError(f"{out}: folder exists and is not empty; pass --force to replace it")
        if not is_model_dir(out):
            raise ApucodecError(f"{out}: --force replaces only a model directory (one with an apucodec "
                                "manifest.json) or an empty folder; this folder holds other files, choose another "
                                "--out")


def is_model_dir(folder: Path) -> bool:
    """Does `folder` hold an apucodec manifest (its format field is ours)? Anything unreadable: no."""
    from apucodec.contract.json_limits import read_json_bounded
    from apucodec.contract.manifest import FORMAT_NAME
    from apucodec.model.directory import MANIFEST_NAME

    try:
        data = read_json_bounded(folder / MANIFEST_NAME, "manifest")
    except ApucodecError:
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT_NAME


@contextmanager
def new_model_dir(out: Path, force: bool) -> Iterator[Path]:
    """Yield an empty staging folder beside `out`; on normal exit it becomes `out` (replacing it if allowed).

    The destination is checked first, so an unwritable one fails before minutes of work."""
    check_destination(out, force)
    existing = next(p for p in (out.parent, *out.parent.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise ApucodecError(f"{out}: cannot write the model directory ({existing} is not a folder)")
    with staging_folder(out.parent, f".{out.name}.partial-", out, "write the model directory") as stage:
        try:
            yield stage
            os.chmod(stage, 0o755)  # mkdtemp makes it 0700; a model folder is meant to be shared
            release(stage)  # the work folder's lock file is not part of the model directory
            _publish(stage, out, force)
        except OSError as exc:
            raise ApucodecError(f"{out}: cannot write the model directory ({exc.strerror or exc})") from None


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


# ---- quantization: more graphs in an existing model directory ---------------------------------------------------

@contextmanager
def update_model_dir(model: ModelDir, prefix: str) -> Iterator[Path]:
    """A staging folder inside `model`'s directory (same filesystem: `install_files` moves are renames)."""
    with staging_folder(model.path, prefix, model.path, "write into the model directory") as work:
        yield work


def install_files(model: ModelDir, moves: dict[str, tuple[Path, str]],
                  edit_manifest: Callable[[dict[str, Path]], None]) -> dict[str, Path]:
    """Move staged files in and save the manifest as one transaction; on failure the directory is left exactly as
    it was (previous files and manifest restored) and an OSError becomes one line.

    `moves`: role -> (staged file, file name in the model directory); `edit_manifest(targets)` records them in
    `model.manifest`."""
    targets = {role: model.path / name for role, (_, name) in moves.items()}
    backups: dict[str, Path] = {}
    manifest_before = copy.deepcopy(model.manifest)
    try:
        for role, target in targets.items():
            staged = moves[role][0]
            if target.exists():
                backups[role] = staged.parent / f"previous.{target.name}"
                os.replace(target, backups[role])
            os.replace(staged, target)
        edit_manifest(targets)
        model.save_manifest()
    except BaseException as exc:
        for role, target in targets.items():
            target.unlink(missing_ok=True)
            if role in backups:
                os.replace(backups[role], target)
        model.manifest.__dict__.update(manifest_before.__dict__)  # in place: callers may hold model.manifest
        if isinstance(exc, OSError):
            raise ApucodecError(f"{model.path}: cannot write the model directory ({exc.strerror or exc}); "
                                "it was left as it was") from None
        raise
    return targets
