"""Which model directory a command or the Python API opens: decided here, and only here.

The order is the same everywhere: the directory the user names (`--model`, `load(model)`, `Codec.open(path)`), then
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

from apucodec.model_dir import BUNDLED_DIR, DEFAULT_DIR_NAME, ENV_VAR, MANIFEST_NAME


@dataclass(frozen=True)
class ModelLocation:
    """A model directory to open, and whether the user named it (an argument or $APUCODEC_MODEL)."""

    path: Path
    explicit: bool

    @property
    def bundled(self) -> bool:
        return self.path == BUNDLED_DIR


def locate_model(option: str | Path | None = None, *, writing: bool = False) -> ModelLocation:
    """--model (or the API's argument), else $APUCODEC_MODEL, else ./apucodec-model, else the bundled model.

    `writing`: the caller writes into the directory, so the bundled model is never the answer (./apucodec-model
    is, even when absent, and the caller's own check reports it).
    """
    if option:
        return ModelLocation(Path(option), True)
    env = os.environ.get(ENV_VAR)
    if env:
        return ModelLocation(Path(env), True)
    local = Path(DEFAULT_DIR_NAME)
    if not writing and not local.exists() and (BUNDLED_DIR / MANIFEST_NAME).is_file():
        return ModelLocation(BUNDLED_DIR, False)
    return ModelLocation(local, False)
