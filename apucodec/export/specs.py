"""One small description per exported graph: file name, manifest role, input and output names and static shapes.

Modelled on HF optimum's exporter configs: everything downstream (export, shape checks, parity inputs, the
manifest, the runtime's feeds) reads names and shapes from here, so they cannot drift apart. torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apucodec.codec.config import CodecConfig
from apucodec.model_dir import WindowGeometry


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class GraphSpec:
    role: str      # manifest files[role]
    filename: str
    module: str    # attribute of APUCodec that this graph is exported from
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]

    def io_dict(self) -> dict[str, Any]:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}


def encoder_spec(cfg: CodecConfig, geometry: WindowGeometry) -> GraphSpec:
    """[1, 1, window_samples] audio -> [1, latent, window_frames] latent (static batch 1: the NPU compiles one
    shape)."""
    return GraphSpec(role="encoder", filename="encoder.onnx", module="encoder",
                     inputs=(TensorSpec("audio", (1, 1, geometry.window_samples)),),
                     outputs=(TensorSpec("latent", (1, cfg.latent_dim, geometry.window_frames)),))


def decoder_spec(cfg: CodecConfig, geometry: WindowGeometry) -> GraphSpec:
    """[1, latent, window_frames] quantized latent -> [1, 1, window_samples] audio."""
    return GraphSpec(role="decoder", filename="decoder.onnx", module="decoder",
                     inputs=(TensorSpec("latent", (1, cfg.latent_dim, geometry.window_frames)),),
                     outputs=(TensorSpec("audio", (1, 1, geometry.window_samples)),))


def graph_specs(cfg: CodecConfig, geometry: WindowGeometry) -> tuple[GraphSpec, GraphSpec]:
    return encoder_spec(cfg, geometry), decoder_spec(cfg, geometry)
