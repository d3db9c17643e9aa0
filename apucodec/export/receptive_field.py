"""How far each network looks, computed from the CodecConfig by index arithmetic (torch-free).

The runtime cuts audio into static windows and keeps only their middle; that is exact only when the context on each
side covers everything the kept outputs depend on — at *every* convolution's input, not just at the audio: a conv
that pads with zeros at the window edge where the whole file had real activations changes the result even if the
audio-level interval looks covered. So we walk the networks backwards, one conv at a time, carrying the interval of
positions that one output frame depends on, and take the context each conv input needs.

Positions are counted per level; `per_frame` is how many positions one latent frame spans at that level (hop at the
audio, 1 at the latent). Residual skips are identities, whose dependence lies inside the conv path's, so the chain of
convs alone gives the exact interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from apucodec.codec.config import CodecConfig

STEM_KERNEL = 7        # modules.Encoder.input_conv / Decoder.output_conv
BOTTLENECK_KERNEL = 3  # modules.Encoder.output_conv / Decoder.input_conv


@dataclass(frozen=True)
class ConvGeometry:
    """Index arithmetic of one Conv1d or ConvTranspose1d, and how many positions a latent frame spans at its input."""

    kernel: int
    stride: int
    padding: int
    dilation: int
    per_frame_in: int
    transpose: bool = False

    def input_interval(self, lo: int, hi: int) -> tuple[int, int]:
        """Input positions that output positions [lo, hi] depend on."""
        if self.transpose:
            # out = in * stride - padding + k, k in [0, kernel)
            return -((self.kernel - 1 - lo - self.padding) // self.stride), (hi + self.padding) // self.stride
        return lo * self.stride - self.padding, hi * self.stride - self.padding + self.dilation * (self.kernel - 1)


def _residual_convs(cfg: CodecConfig, per_frame: int) -> list[ConvGeometry]:
    convs = []
    for d in cfg.dilations:
        convs.append(ConvGeometry(cfg.residual_kernel, 1, d * (cfg.residual_kernel - 1) // 2, d, per_frame))
        convs.append(ConvGeometry(1, 1, 0, 1, per_frame))
    return convs


def encoder_convs(cfg: CodecConfig) -> list[ConvGeometry]:
    """The encoder's convs in forward order (mirrors modules.Encoder)."""
    per_frame = cfg.hop_length
    convs = [ConvGeometry(STEM_KERNEL, 1, STEM_KERNEL // 2, 1, per_frame)]
    for s in cfg.strides:
        convs += _residual_convs(cfg, per_frame)
        convs.append(ConvGeometry(2 * s, s, s // 2, 1, per_frame))
        per_frame //= s
    convs.append(ConvGeometry(BOTTLENECK_KERNEL, 1, BOTTLENECK_KERNEL // 2, 1, per_frame))
    return convs


def decoder_convs(cfg: CodecConfig) -> list[ConvGeometry]:
    """The decoder's convs in forward order (mirrors modules.Decoder)."""
    per_frame = 1
    convs = [ConvGeometry(BOTTLENECK_KERNEL, 1, BOTTLENECK_KERNEL // 2, 1, per_frame)]
    for s in reversed(cfg.strides):
        convs.append(ConvGeometry(2 * s, s, s // 2, 1, per_frame, transpose=True))
        per_frame *= s
        convs += _residual_convs(cfg, per_frame)
    convs.append(ConvGeometry(STEM_KERNEL, 1, STEM_KERNEL // 2, 1, per_frame))
    return convs


@dataclass(frozen=True)
class Reach:
    """What one latent frame's worth of output (frame 0) depends on at the network input, and the context needed.

    `lo`/`hi` are input positions (samples for the encoder, latent frames for the decoder) relative to frame 0;
    `context_frames` is the fewest frames of context on each side that keeps every conv input inside the window.
    """

    lo: int
    hi: int
    input_per_frame: int
    context_frames: int

    @property
    def left(self) -> int:
        """Input positions before the frame's first position that it depends on."""
        return -self.lo

    @property
    def right(self) -> int:
        """Input positions after the frame's last position that it depends on."""
        return self.hi - (self.input_per_frame - 1)

    def to_dict(self, unit: str) -> dict[str, Any]:
        return {"unit": unit, "input_interval": [self.lo, self.hi], "left": self.left, "right": self.right,
                "context_frames": self.context_frames}


def reach_of(convs: list[ConvGeometry], output_per_frame: int) -> Reach:
    lo, hi = 0, output_per_frame - 1
    context = 0
    for conv in reversed(convs):
        lo, hi = conv.input_interval(lo, hi)
        r = conv.per_frame_in
        # kept frames f in [C, C+n) need f*r + lo >= 0 and f*r + hi <= (2C + n) * r - 1 at this conv's input
        context = max(context, math.ceil(-lo / r), math.ceil((hi + 1) / r) - 1)
    return Reach(lo=lo, hi=hi, input_per_frame=convs[0].per_frame_in, context_frames=max(context, 0))


@dataclass(frozen=True)
class ReceptiveField:
    encoder: Reach  # in samples
    decoder: Reach  # in latent frames
    pooled: bool    # GroupNorm pools over the whole window: no finite receptive field, windows cannot be exact

    @property
    def context_frames(self) -> int:
        """Context frames one shared window geometry needs on each side for both graphs."""
        return max(self.encoder.context_frames, self.decoder.context_frames)

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.to_dict("samples"), "decoder": self.decoder.to_dict("frames"),
                "context_frames": self.context_frames, "pooled_statistics": self.pooled}


def receptive_field(cfg: CodecConfig) -> ReceptiveField:
    return ReceptiveField(encoder=reach_of(encoder_convs(cfg), 1),
                          decoder=reach_of(decoder_convs(cfg), cfg.hop_length),
                          pooled=cfg.norm == "group")


def chunk_frames_for(cfg: CodecConfig, chunk_seconds: float) -> int:
    """Latent frames of new audio per window for a requested chunk length (at least one)."""
    return max(1, round(chunk_seconds * cfg.sample_rate / cfg.hop_length))
