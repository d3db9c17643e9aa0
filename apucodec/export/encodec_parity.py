"""EnCodec's step graphs, streamed on ORT through the runtime's own Stepper (first step included), against the
whole-file torch network: the same check as apucodec/export/parity.py, with the stream's first step run on the
graph long enough to reproduce EnCodec's reflect padding (as the runtime runs it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from apucodec.codec.encodec.model import EncodecNet
from apucodec.export.encodec_steps import EncodecStepNetwork
from apucodec.export.parity import (
    PARITY_SECONDS,
    GraphParity,
    _compare_edges,
    _streamed,
    cpu_session,
    parity_material,
)
from apucodec.runtime.onnx_step import onnx_step
from apucodec.runtime.stepper import StepFunction, Stepper


def first_role(networks: dict[str, EncodecStepNetwork], kind: str, start: int) -> str:
    """The role of the shortest `kind` graph whose step spans `start` frames (the one that runs a first step)."""
    return min((net.step_frames, role) for role, net in networks.items()
               if net.kind == kind and net.step_frames >= start)[1]


def make_stepper(step: StepFunction, net: EncodecStepNetwork, first: StepFunction, first_net: EncodecStepNetwork,
                 latent: int) -> Stepper:
    """The runtime's stage geometry (no lookahead: EnCodec's delay is zero), its first step on `first`."""
    return Stepper.for_stage(step, net.kind, hop=net.hop, latent_dim=latent, delay_samples=0,
                             step_frames=net.step_frames, state_size=net.state_size, horizon=net.horizon_frames,
                             first=(first, first_net.step_frames, first_net.horizon_frames))


@torch.no_grad()
def check_encodec_parity(model: EncodecNet, networks: dict[str, EncodecStepNetwork], paths: dict[str, Path],
                         seconds: float = PARITY_SECONDS) -> dict[str, GraphParity]:
    cfg = model.config
    hop = cfg.hop_length
    steps = {role: onnx_step(cpu_session(paths[role])) for role in networks}
    results: dict[str, dict[str, dict[str, float]]] = {role: {} for role in networks}
    for kind, audio, latent_ref, quantized, audio_ref in parity_material(model, seconds):
        frames = audio.shape[-1] // hop
        for role, net in networks.items():
            first = first_role(networks, net.kind, net.start_frames)
            stepper = make_stepper(steps[role], net, steps[first], networks[first], cfg.latent_dim)
            if net.kind == "encoder":
                got = _streamed(stepper, audio[0], frames, 3 * hop + 17)
                results[role][kind] = _compare_edges(latent_ref.numpy()[0], got, 16)
            else:
                got = _streamed(stepper, quantized.numpy()[0].astype(np.float32), frames, 5)
                results[role][kind] = _compare_edges(audio_ref, got, 16 * hop)
    return {role: GraphParity(per_signal) for role, per_signal in results.items()}
