"""Empirical receptive field: which outputs depend on one input position. The check on receptive_field.py's
arithmetic, where an off-by-one would silently break stitching.

Two measurements per graph:
  * gradient: the support of d(output frame)/d(input), by autograd on a real signal — what moves under an
    infinitesimal perturbation. This is the true dependency and must equal the computed interval.
  * perturbation: add a finite bump to one input position and compare outputs exactly. Its reach is narrower:
    at the fringe the effect travels through the outer taps of ~30 convs and falls below float32 resolution of the
    output it is added to. It must lie within the computed interval; how much narrower it is is reported.
Intervals are in the same frame-0-relative coordinates as receptive_field.Reach (samples for the encoder input,
frames for the decoder input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from apucodec.export.receptive_field import Reach
from apucodec.export.signals import signal

Interval = tuple[int, int]


@dataclass(frozen=True)
class ProbeResult:
    analytic: Interval
    gradient: Interval | None      # None: nothing depends (should not happen)
    perturbation: Interval | None
    global_reach: bool             # the dependency spans the whole probe input: pooled statistics (GroupNorm)

    def _within(self, interval: Interval | None) -> bool:
        return interval is not None and self.analytic[0] <= interval[0] and interval[1] <= self.analytic[1]

    @property
    def within(self) -> bool:
        return self._within(self.gradient) and self._within(self.perturbation)

    @property
    def exact(self) -> bool:
        return self.gradient == self.analytic

    def to_dict(self) -> dict[str, Any]:
        def as_list(interval: Interval | None) -> list[int] | None:
            return list(interval) if interval else None

        return {"analytic_interval": list(self.analytic), "gradient_interval": as_list(self.gradient),
                "perturbation_interval": as_list(self.perturbation), "within_analytic": self.within,
                "gradient_matches_analytic": self.exact, "global": self.global_reach}


def _interval(positions: np.ndarray) -> Interval | None:
    return (int(positions.min()), int(positions.max())) if positions.size else None


def _probe_frames(reach: Reach) -> tuple[int, int]:
    frames = 2 * (reach.context_frames + 2) + 1
    return frames, frames // 2


def probe_encoder(encoder: nn.Module, reach: Reach, hop: int, sample_rate: int) -> ProbeResult:
    frames, mid = _probe_frames(reach)
    base = torch.from_numpy(signal("mixture", frames * hop, sample_rate)).view(1, 1, -1)

    audio = base.clone().requires_grad_(True)
    latent = encoder(audio)
    weights = torch.randn(latent.shape[1], generator=torch.Generator().manual_seed(5))
    (latent[0, :, mid] * weights).sum().backward()
    depends = np.flatnonzero(audio.grad[0, 0].numpy() != 0)
    gradient = _interval(depends - mid * hop)

    # bumps at the phases where the computed interval's two ends are reached, plus one in the middle of a frame
    positions = [mid * hop + reach.lo % hop, mid * hop + reach.hi % hop, mid * hop + hop // 2]
    with torch.no_grad():
        batch = base.repeat(len(positions) + 1, 1, 1)
        for i, x in enumerate(positions, start=1):
            batch[i, 0, x] += 0.25
        out = encoder(batch)
        moved = ((out[1:] - out[:1]).abs().amax(dim=1) != 0).numpy()  # [probes, frames]
    offsets = np.concatenate([x - np.flatnonzero(moved[i]) * hop for i, x in enumerate(positions)])
    return ProbeResult((reach.lo, reach.hi), gradient, _interval(offsets), depends.size == base.numel())


def probe_decoder(decoder: nn.Module, reach: Reach, latent_dim: int, hop: int) -> ProbeResult:
    frames, mid = _probe_frames(reach)
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(1, latent_dim, frames, generator=gen)

    latent = base.clone().requires_grad_(True)
    audio = decoder(latent)
    weights = torch.randn(hop, generator=gen)
    (audio[0, 0, mid * hop:(mid + 1) * hop] * weights).sum().backward()
    depends = np.flatnonzero(latent.grad[0].abs().amax(dim=0).numpy() != 0)
    gradient = _interval(depends - mid)

    with torch.no_grad():
        poked = base.clone()
        poked[0, :, mid] += torch.randn(latent_dim, generator=gen)
        out = decoder(torch.cat([base, poked]))
        moved = np.flatnonzero((out[1, 0] != out[0, 0]).numpy())
    return ProbeResult((reach.lo, reach.hi), gradient, _interval(mid - moved // hop), depends.size == frames)
