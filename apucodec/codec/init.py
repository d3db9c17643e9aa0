"""Initialisations that change how an untrained network sounds, not what it can learn.

A transposed conv with stride s computes each of its s output phases with its own taps. With torch's random
initialisation the phases differ, so a constant input comes out as a pattern that repeats every s samples: a comb
of lines at multiples of the layer's input rate (for the decoder's first upsampler: the 86.13 Hz frame rate). Training
has to unlearn it, and a short training does not finish. ICNR (Aitken et al. 2017, "Checkerboard artifact free
sub-pixel convolution") starts every phase from the same taps instead, i.e. nearest-neighbour upsampling followed by a
short conv, whose response has nulls exactly at the multiples of the input rate.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def icnr_(conv: nn.ConvTranspose1d) -> None:
    """Give every output phase of `conv` the same taps, keeping torch's per-tap variance.

    Output sample t of a stride-s transposed conv sums the taps k with k = t + padding (mod s), one from each block
    of s taps. Copying the first tap of each block across the block makes that sum independent of the phase.
    """
    stride = conv.stride[0]
    kernel = conv.weight.shape[-1]
    if kernel % stride:
        raise ValueError(f"ICNR needs a kernel that is a multiple of the stride, got kernel {kernel}, stride {stride}")
    per_block = conv.weight[..., ::stride]  # [c_in, c_out, kernel // stride]
    conv.weight.copy_(per_block.repeat_interleave(stride, dim=-1))


def init_upsampler(conv: nn.ConvTranspose1d, scheme: str) -> None:
    """Apply CodecConfig.upsample_init to a freshly built transposed conv (before weight norm wraps it)."""
    if scheme == "icnr":
        icnr_(conv)
    elif scheme != "default":
        raise ValueError(f"unknown upsample_init {scheme!r}")
