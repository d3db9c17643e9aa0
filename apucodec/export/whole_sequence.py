"""Whole-sequence graphs: a pooled-norm model's encoder and decoder with a dynamic time axis, for offline work.

The original project's models (norm="group") put GroupNorm(1, C) before every residual unit; its statistics pool
over the whole sequence, so a step of audio cannot be computed from that step and a finite state: a step graph
can only approximate it (apucodec/export/running_norm.py). Offline (`run`, `encode`, `decode`, `tokenize`, the
API's one-shot calls) the runtime instead runs these graphs on the whole input at once, which is exactly what the
checkpoint's own PyTorch forward computes. Their parity against whole-file PyTorch is held to the same 80 dB as the
project's step graphs; the NPU, which compiles static shapes, runs the step graphs.

Numerics: ONNX Runtime sums a ReduceMean over millions of float32 values in one accumulator (folding.py measured
~50 dB lost). `WholeGroupNorm` pads the time axis to a multiple of `BLOCK` with zeros (which add nothing to a sum),
sums blocks, then blocks of blocks, then channels, and divides by the true count: ~146 dB against float64 at 2M
samples on ORT's CPU EP, as good as PyTorch's own float32 GroupNorm (measured). The variance is that of the
already-centred values. Shapes are read in the graph (Shape/Mod/Pad), so one graph takes any length.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from apucodec.codec.model import APUCodec
from apucodec.contract.steps import STEP_INPUTS, STEP_OUTPUTS, step_role
from apucodec.contract.steps import WHOLE_SEQUENCE as WHOLE
from apucodec.errors import ApucodecError, first_line
from apucodec.export import graph
from apucodec.export.folding import MultiLevelGroupNorm
from apucodec.export.parity import MIN_SNR_DB, GraphParity, _compare_edges, cpu_session, parity_material

BLOCK = 64  # samples summed together at the first level (and blocks at the second)


class WholeGroupNorm(nn.Module):
    """GroupNorm over [1, C, T] for any T, with float32 sums short enough to keep ~146 dB (see the docstring)."""

    def __init__(self, norm: MultiLevelGroupNorm) -> None:
        super().__init__()
        self.groups, self.eps = norm.groups, norm.eps
        self.register_buffer("weight", norm.weight.detach().clone())
        self.register_buffer("bias", norm.bias.detach().clone())

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] -> [B, G, 1, 1]: the mean over each group's channels and time."""
        batch, channels, frames = x.shape
        padded = F.pad(x, (0, (-frames) % (BLOCK * BLOCK)))
        blocks = padded.reshape(batch, self.groups, channels // self.groups, -1, BLOCK, BLOCK)
        total = blocks.sum(-1).sum(-1).sum(-1).sum(-1)
        return (total / (frames * (channels // self.groups))).reshape(batch, self.groups, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames = x.shape
        grouped = x.reshape(batch, self.groups, channels // self.groups, frames)
        centred = grouped - self._mean(x)
        variance = self._mean((centred * centred).reshape(batch, channels, frames))
        normed = (centred / torch.sqrt(variance + self.eps)).reshape(batch, channels, frames)
        return normed * self.weight + self.bias


def whole_module(folded: nn.Module) -> nn.Module:
    """A copy of a folded encoder/decoder (apucodec/export/folding.py) with every norm made length-free."""
    module = copy.deepcopy(folded)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MultiLevelGroupNorm):
                setattr(parent, name, WholeGroupNorm(child))
    module.eval()
    return module


def whole_role(stage: str) -> str:
    return step_role(stage, WHOLE)


def io_entries(stage: str, latent_dim: int) -> tuple[list[dict], list[dict]]:
    """The manifest's inputs/outputs of a whole-sequence graph; the time axis is named, not sized."""
    audio, latent = [1, 1, "samples"], [1, latent_dim, "frames"]
    shapes = (audio, latent) if stage == "encoder" else (latent, audio)
    return ([{"name": STEP_INPUTS[stage][0], "shape": shapes[0], "dtype": "float32"}],
            [{"name": STEP_OUTPUTS[stage][0], "shape": shapes[1], "dtype": "float32"}])


def whole_to_onnx(module: nn.Module, stage: str, latent_dim: int, hop: int, opset: int) -> onnx.ModelProto:
    """Trace on 4 frames with the time axis dynamic (TorchScript exporter, as for the step graphs)."""
    name_in, name_out = STEP_INPUTS[stage][0], STEP_OUTPUTS[stage][0]
    example = torch.zeros((1, 1, 4 * hop) if stage == "encoder" else (1, latent_dim, 4))
    axes = {name_in: {2: "samples" if stage == "encoder" else "frames"},
            name_out: {2: "frames" if stage == "encoder" else "samples"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=[name_in], output_names=[name_out], dynamic_axes=axes)
    proto = onnx.load_from_string(buffer.getvalue())
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ApucodecError(f"{whole_role(stage)}.onnx: onnx.checker rejected the exported graph "
                            f"({first_line(exc)})") from None
    return proto


def export_whole(folded: dict[str, nn.Module], model: APUCodec, stage_dir: Path, opset: int,
                 simplify: bool) -> tuple[dict[str, Path], dict[str, dict]]:
    """Write encoder.whole.onnx and decoder.whole.onnx into `stage_dir`; (paths by role, graph facts by role)."""
    cfg = model.config
    paths, facts = {}, {}
    for stage, module in folded.items():
        proto = whole_to_onnx(whole_module(module), stage, cfg.latent_dim, cfg.hop_length, opset)
        before = graph.node_summary(proto)["nodes"]
        if simplify:
            proto, _ = graph.simplify(proto)
        counts = graph.node_summary(proto)
        role = whole_role(stage)
        paths[role] = stage_dir / f"{role}.onnx"
        onnx.save(proto, str(paths[role]))
        facts[role] = {"nodes_exported": before, "nodes": counts["nodes"], "ops": counts["ops"], "opset": opset}
    return paths, facts


@torch.no_grad()
def check_whole_parity(model: APUCodec, paths: dict[str, Path], seconds: float = 1.5) -> dict[str, GraphParity]:
    """Each whole-sequence graph on ORT's CPU EP against the checkpoint's own whole-file forward (weight norm still
    parametrized), on the step graphs' parity material; a length that is not a whole number of frames."""
    hop = model.config.hop_length
    sessions = {role: cpu_session(path) for role, path in paths.items()}
    results: dict[str, dict[str, dict[str, float]]] = {role: {} for role in paths}
    for kind, audio, latent_ref, quantized, audio_ref in parity_material(model, seconds):
        for role, session in sessions.items():
            stage = role.split(".")[0]
            feed = audio if stage == "encoder" else quantized.numpy().astype(np.float32)
            got = session.run(None, {session.get_inputs()[0].name: feed})[0][0]
            reference = latent_ref.numpy()[0] if stage == "encoder" else audio_ref
            results[role][kind] = _compare_edges(reference, got, 16 if stage == "encoder" else 16 * hop)
    return {role: GraphParity(per_signal) for role, per_signal in results.items()}


def refuse_below_threshold(parities: dict[str, GraphParity]) -> None:
    for role, p in parities.items():
        if p.snr_db < MIN_SNR_DB:
            raise ApucodecError(f"{role}.onnx: whole-sequence ONNX output differs from whole-file PyTorch (SNR "
                                f"{p.snr_db:.1f} dB < {MIN_SNR_DB:.0f} dB); export refused")
