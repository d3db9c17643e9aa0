"""The one place `apucodec.dataset` calls the runtime: open a model, encode samples, decode codes.

Everything else in the package (Ray stages, shard writer, reader) goes through `CodecAdapter`, so when the runtime's
public API changes only this module changes with it. Inputs are float32 mono samples already at the codec's rate
(the Ray read tasks resample on CPU), outputs are codes [n_codebooks, frames].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """What a shard records about the model that made its codes (checked on resume, copied to dataset.json)."""

    path: str
    model_id: str
    sample_rate: int
    hop: int
    n_codebooks: int      # the model's; a dataset may use fewer
    codebook_size: int
    summary: dict[str, Any]


def resolve_model(option: str | Path | None) -> ModelInfo:
    """--model, $APUCODEC_MODEL, ./apucodec-model or the bundled model, read and checked (no sessions opened)."""
    from apucodec.model_dir import load_model_dir
    from apucodec.model_location import locate_model

    model = load_model_dir(locate_model(option).path)
    cfg = model.config
    summary = {"model_id": model.model_id, "path": str(model.path.resolve()), "bundled": model.is_bundled,
               "codec": model.manifest.get("codec"), "streaming": model.manifest.get("streaming"),
               "producers": model.manifest.get("producers"),
               "quantization": (model.manifest.get("quantization") or {}).get("preset")}
    return ModelInfo(str(model.path.resolve()), model.model_id, cfg.sample_rate, model.hop, cfg.n_codebooks,
                     cfg.codebook_size, summary)


class CodecAdapter:
    """One opened codec (sessions placed like `apucodec run`: NPU/GPU where present, else CPU), only the stages
    asked for: an encoder actor never opens a decoder session."""

    def __init__(self, model_path: str | Path, threads: int = 0, stages: tuple[str, ...] = ("encoder",)) -> None:
        from apucodec.api import Codec
        from apucodec.model_dir import load_model_dir
        from apucodec.runtime.providers import SessionSettings

        self._codec = Codec(load_model_dir(model_path), SessionSettings(threads=threads), warn=None, stages=stages)
        self.model_id: str = self._codec.model.model_id
        self.sample_rate: int = self._codec.sample_rate

    def encode(self, samples: np.ndarray, n_codebooks: int | None = None) -> np.ndarray:
        """Codec-rate float32 mono samples -> codes [n_codebooks, frames] (raises ApucodecError on bad input)."""
        return self._codec.encode(samples, sample_rate=self.sample_rate, n_codebooks=n_codebooks).array

    def decode(self, codes: np.ndarray, length: int) -> np.ndarray:
        """Codes [n, frames] -> `length` codec-rate samples (needs stages=("decoder",))."""
        return self._codec.decode(codes, length=length)

    def placement(self) -> str:
        return self._codec.placement.summary()
