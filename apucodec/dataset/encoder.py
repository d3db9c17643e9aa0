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
    precision: str = "fp32"       # what tokenize asked for (apucodec.runtime.precision)
    graph_precision: str = "fp32"  # the encoder graph that precision runs here ("fp32", "cpu-int8", "npu-int8")
    graph_sha256: str = ""


def resolve_model(option: str | Path | None, precision: str = "fp32") -> ModelInfo:
    """--model, $APUCODEC_MODEL, ./apucodec-model or the bundled model at `precision`: the encoder graph that
    precision runs on this machine is found by opening it once (encoder only), so the shards and dataset.json can
    say which graph made the codes, and an output folder can refuse codes of another."""
    from apucodec.api import load

    with load(option, precision=precision, stages=("encoder",), warn=None) as codec:
        model = codec.model
        graph, sha = codec.graph_precision("encoder"), codec.graph_sha256("encoder")
        graph_file = codec.graph_record("encoder").name
    cfg = model.config
    summary = {"model_id": model.model_id, "path": str(model.path.resolve()), "bundled": model.is_bundled,
               "codec": model.manifest.codec, "streaming": model.manifest.streaming.to_dict(),
               "producers": model.manifest.producers,
               # the encoder graph that made the codes (the manifest has no top-level "quantization" record)
               "encoder_graph": {"precision": graph, "sha256": sha, "file": graph_file,
                                 "asked": precision},
               "quantization": None if graph == "fp32" else graph}
    return ModelInfo(str(model.path.resolve()), model.model_id, cfg.sample_rate, model.hop, cfg.n_codebooks,
                     cfg.codebook_size, summary, precision, graph, sha)


class CodecAdapter:
    """One opened codec (sessions placed like `apucodec run`: NPU/GPU where present, else CPU), only the stages
    asked for: an encoder actor never opens a decoder session."""

    def __init__(self, model_path: str | Path, threads: int = 0, stages: tuple[str, ...] = ("encoder",),
                 precision: str = "fp32") -> None:
        from apucodec.api import load

        self._codec = load(model_path, precision=precision, threads=threads, stages=stages, warn=None)
        self.model_id: str = self._codec.model_id
        self.sample_rate: int = self._codec.sample_rate
        self.graph = (self._codec.graph_precision("encoder"), self._codec.graph_sha256("encoder")) \
            if "encoder" in stages else ("", "")

    def encode(self, samples: np.ndarray, n_codebooks: int | None = None) -> np.ndarray:
        """Codec-rate float32 mono samples -> codes [n_codebooks, frames] (raises ApucodecError on bad input)."""
        return self._codec.encode(samples, sample_rate=self.sample_rate, n_codebooks=n_codebooks).array

    def decode(self, codes: np.ndarray, length: int) -> np.ndarray:
        """Codes [n, frames] -> `length` codec-rate samples (needs stages=("decoder",))."""
        return self._codec.decode(codes, length=length)

    def placement(self) -> str:
        return self._codec.placement.summary()
