"""One small description per exported step graph: file name, manifest role, stage, step size, input and output names
and static shapes.

Modelled on HF optimum's exporter configs: everything downstream (export, shape checks, parity inputs, the
manifest, the runtime's feeds) reads names and shapes from here, so they cannot drift apart. torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from apucodec.contract.config import CodecConfig
from apucodec.contract.manifest import TensorEntry
from apucodec.contract.steps import STEP_INPUTS, STEP_OUTPUTS, step_role

# A live step (4 frames, 46 ms) and an offline one (64 frames, 0.74 s): see apucodec/export/streaming.py.
DEFAULT_STEP_FRAMES = (4, 64)
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def entry(self) -> TensorEntry:
        """As the manifest records it."""
        return TensorEntry(self.name, list(self.shape), self.dtype)


@dataclass(frozen=True)
class GraphSpec:
    role: str      # manifest files[role]
    filename: str
    stage: str     # "encoder" | "decoder": the APUCodec attribute this graph is exported from
    step_frames: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]


def step_spec(cfg: CodecConfig, stage: str, step_frames: int, state_size: int) -> GraphSpec:
    """encoder: audio [1, 1, S*hop] + state [1, N] + bounds [2] -> latent [1, D, S] + next_state [1, N];
    decoder: latent [1, D, S] + state + bounds -> audio [1, 1, S*hop] + next_state (static batch 1: the NPU
    compiles one shape)."""
    audio = (1, 1, step_frames * cfg.hop_length)
    latent = (1, cfg.latent_dim, step_frames)
    main_in, main_out = (audio, latent) if stage == "encoder" else (latent, audio)
    state = (1, state_size)
    in_names, out_names = STEP_INPUTS[stage], STEP_OUTPUTS[stage]
    role = step_role(stage, step_frames)
    return GraphSpec(role=role, filename=f"{role}.onnx", stage=stage, step_frames=step_frames,
                     inputs=(TensorSpec(in_names[0], main_in), TensorSpec(in_names[1], state),
                             TensorSpec(in_names[2], (2,))),
                     outputs=(TensorSpec(out_names[0], main_out), TensorSpec(out_names[1], state)))
