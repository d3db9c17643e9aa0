"""`--resume` continues the run that wrote the checkpoint: its settings, not the command line's defaults.

Resuming with a shorter command line used to change the run silently (a batch of 4 became the default 16), which
breaks the exact resume the checkpoint exists for. A checkpoint records the run's settings; on resume every setting
the user did not give on the command line comes from it, and what the command line did change is printed.
The model itself (preset, activation, initialisation) is the checkpoint's: asking for another one is an error,
since it cannot be honoured.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from apucodec.codec.checkpoint import _read
from apucodec.codec.losses import LossWeights
from apucodec.codec.train import TrainSettings
from apucodec.contract.config import CodecConfig
from apucodec.errors import ApucodecError

# a flat name per setting, as the command line spells it (without the dashes, underscores for dashes)
LOSS_FIELDS = {"l1_weight": "l1", "stft_weight": "stft", "mel_weight": "mel", "commitment_weight": "commitment"}


def flat(settings: TrainSettings) -> dict[str, Any]:
    out = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != "loss_weights"}
    out.update({flag: getattr(settings.loss_weights, name) for flag, name in LOSS_FIELDS.items()})
    return out


def unflat(values: dict[str, Any]) -> TrainSettings:
    weights = LossWeights(**{name: float(values[flag]) for flag, name in LOSS_FIELDS.items()})
    known = {f.name for f in dataclasses.fields(TrainSettings)} - {"loss_weights"}
    return TrainSettings(**{k: v for k, v in values.items() if k in known}, loss_weights=weights)


def _saved(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
    data = _read(path)
    if not isinstance(data, dict):
        return {}, None, 0
    saved = dict(data.get("settings") or {})
    weights = saved.pop("loss_weights", None)
    if isinstance(weights, dict):
        saved.update({flag: weights[name] for flag, name in LOSS_FIELDS.items() if name in weights})
    config = data.get("config")
    return saved, dict(config) if isinstance(config, dict) else None, int(data.get("step", 0))


def resumed_settings(path: Path, given: TrainSettings, explicit: set[str],
                     config: CodecConfig | None = None) -> tuple[TrainSettings, list[str]]:
    """The settings a resumed run uses: the checkpoint's, overridden by `explicit` (flat names the user gave).

    `config` is the model the command line asked for explicitly (None: it asked for none). Returns the settings
    and the lines to print: what was kept and what changed.
    """
    saved, saved_config, step = _saved(path)
    if config is not None and saved_config is not None and CodecConfig.from_dict(saved_config) != config:
        raise ApucodecError(f"{path}: the checkpoint holds another model than --preset/--activation/--upsample-init "
                            "ask for; a resumed run keeps the checkpoint's model (drop those options)")
    values = flat(given)
    kept, changed = [], []
    for name, value in saved.items():
        if name not in values:
            continue
        if name in explicit:
            if value != values[name]:
                changed.append(f"{name} {value} -> {values[name]}")
        elif value != values[name]:
            kept.append(f"{name} {value}")
            values[name] = value
    lines = [f"resuming {path} at step {step}" + (f", keeping its {', '.join(kept)}" if kept else "")
             + (" (settings not recorded in this checkpoint: the command line's are used)" if not saved else "")]
    if changed:
        lines.append(f"changed from the checkpoint's run: {', '.join(changed)}")
    return unflat(values), lines
