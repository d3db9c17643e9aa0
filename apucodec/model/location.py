"""Which model directory a command or the Python API opens: decided here, and only here.

The order is the same everywhere: the directory the user names (`--model`, `load(model)`, `CodecEngine.open(path)`; or
the name of a model `apucodec pull` fetched, e.g. `--model dac-44khz`: an existing path of that name wins), then
$APUCODEC_MODEL, then ./apucodec-model, then the model bundled inside the package, so `apucodec run in.wav out.wav`
and `apucodec.load()` work out of the box. Two callers need more than a path, and say so here rather than deciding
again: commands that write into the model directory (`quantize`) never fall back to the bundled copy, which lives
in site-packages and must not be modified in place; and `doctor` must know whether the user named a directory
(then a bad one is an error) or not (then it reports "none given").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.model.directory import BUNDLED_DIR, DEFAULT_DIR_NAME, ENV_VAR, MANIFEST_NAME


@dataclass(frozen=True)
class ModelLocation:
    """A model directory to open, and whether the user named it (an argument or $APUCODEC_MODEL)."""

    path: Path
    explicit: bool

    @property
    def bundled(self) -> bool:
        return self.path == BUNDLED_DIR


def by_name(option: str | Path) -> Path:
    """A named model's directory: `option` itself when that path exists, else, for the name of an official
    release (`apucodec pull NAME`), the directory `pull` made in the user cache (an unpulled one is an error)."""
    path, name = Path(option), str(option)
    if path.exists():
        return path
    from apucodec.model.registry import is_model_name, pulled_dir

    if not is_model_name(name):
        return path
    pulled = pulled_dir(name)
    if not (pulled / MANIFEST_NAME).is_file():
        raise ApucodecError(f"{name}: this model is not pulled yet; run 'apucodec pull {name}' first")
    return pulled


def locate_model(option: str | Path | None = None, *, writing: bool = False) -> ModelLocation:
    """--model (or the API's argument), else $APUCODEC_MODEL, else ./apucodec-model, else the bundled model.

    Either may be a path or the name of a pulled model (`by_name`). `writing`: the caller writes into the
    directory, so the bundled model is never the answer (./apucodec-model is, even when absent, and the caller's
    own check reports it).
    """
    if option:
        return ModelLocation(by_name(option), True)
    env = os.environ.get(ENV_VAR)
    if env:
        return ModelLocation(by_name(env), True)
    local = Path(DEFAULT_DIR_NAME)
    if not writing and not local.exists() and (BUNDLED_DIR / MANIFEST_NAME).is_file():
        return ModelLocation(BUNDLED_DIR, False)
    return ModelLocation(local, False)
