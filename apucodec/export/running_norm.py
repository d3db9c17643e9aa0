"""Pooled normalisation in a step graph: running statistics carried in the state (an approximation, labelled so).

A seed model's GroupNorm(1, C) divides every sample by statistics of the whole sequence, which no causal step can
know. Pooling over each step's new samples (what step graphs did before) is a different model: measured on a
random 32.4M seed checkpoint, 1.1 dB at 4-frame steps. `RunningGroupNorm` instead normalises with the statistics
of everything the stream has seen up to the end of the current step: per group, the count, mean and sum of squared
deviations (Chan's pairwise update: stable in float32, unlike running sums of squares) live in the step graph's
state, zero at the start of a stream. Late in a stream they approach the whole-file statistics; the export measures
how close on real audio and records it as approximate, never as parity.

Samples outside the whole-file signal (before the start, after the end while the stream is flushed) count for
nothing, and the norm's output is zero there, as the whole-file network's next convolution sees zero padding. Ops:
ReduceSum, Add, Sub, Mul, Div, Max, Sqrt, Reshape.
"""

from __future__ import annotations

import torch
from torch import nn

from apucodec.export.folding import MultiLevelGroupNorm

PER_STEP = "per-step"   # the old behaviour: statistics of each step's samples (for comparisons only)
RUNNING = "running"
NORM_MODES = (RUNNING, PER_STEP)


class RunningGroupNorm(nn.Module):
    """GroupNorm whose statistics run from the stream's start (state: [count, mean, M2] per group)."""

    def __init__(self, norm: MultiLevelGroupNorm, valid: nn.Module, layout: object, name: str, samples: int) -> None:
        super().__init__()
        self.groups, self.eps = norm.groups, norm.eps
        self.register_buffer("weight", norm.weight.detach().clone())
        self.register_buffer("bias", norm.bias.detach().clone())
        self.register_buffer("ones", torch.ones(1, 1, samples))
        self.register_buffer("one", torch.ones(1))
        self.valid = valid  # a BoundsMask of this layer's track: 1 inside the whole-file signal, 0 outside
        self.offset = layout.claim(f"{name}.stats", 3, self.groups)

    def forward(self, x: torch.Tensor, step: object) -> torch.Tensor:
        _, channels, samples = x.shape
        per_group = channels // self.groups
        stats = step.take(self.offset, 3, self.groups)
        n_a, mean_a, m2_a = stats[:, 0], stats[:, 1], stats[:, 2]          # [1, G] each
        weight = self.valid(self.ones, step)                                # [1, 1, S]
        grouped = x.reshape(1, self.groups, per_group, samples)
        mask = weight.reshape(1, 1, 1, samples)
        n_b = weight.sum(dim=-1) * per_group                                # [1, 1]
        mean_b = (grouped * mask).sum(dim=(-1, -2)) / torch.maximum(n_b, self.one)
        deviation = (grouped - mean_b.reshape(1, self.groups, 1, 1)) * mask
        m2_b = (deviation * deviation).sum(dim=(-1, -2))
        n = n_a + n_b
        delta = mean_b - mean_a
        share = n_b / torch.maximum(n, self.one)
        mean = mean_a + delta * share
        m2 = m2_a + m2_b + delta * delta * n_a * share
        step.put(torch.stack([n, mean, m2], dim=1))
        variance = m2 / torch.maximum(n, self.one)
        normed = (grouped - mean.reshape(1, self.groups, 1, 1)) / torch.sqrt(
            variance.reshape(1, self.groups, 1, 1) + self.eps)
        return (normed.reshape(1, channels, samples) * self.weight + self.bias) * weight


class PerStepNorm(nn.Module):
    """A norm applied to the step's samples alone (no state): the pre-running-statistics step graphs."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.module = norm

    def forward(self, x: torch.Tensor, step: object) -> torch.Tensor:
        return self.module(x)


def stream_norm(norm: nn.Module, valid: nn.Module, layout: object, name: str, samples: int,
                mode: str = RUNNING) -> nn.Module:
    """The step-graph op for a residual unit's norm: identity stays identity; a GroupNorm runs (or pools per step)."""
    if isinstance(norm, MultiLevelGroupNorm) and mode == RUNNING:
        return RunningGroupNorm(norm, valid, layout, name, samples)
    if mode not in NORM_MODES:
        raise ValueError(f"norm mode must be one of {NORM_MODES}, not {mode!r}")
    return PerStepNorm(norm)


def has_pooled_norm(module: nn.Module) -> bool:
    return any(isinstance(m, MultiLevelGroupNorm | nn.GroupNorm) for m in module.modules())
