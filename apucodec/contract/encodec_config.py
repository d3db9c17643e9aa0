"""EnCodec's config (torch-free): the numbers of Meta's SEANet encoder/decoder, its LSTMs and its RVQ.

The defaults are `EncodecModel.encodec_model_24khz`: mono 24 kHz, ratios 8-5-4-2 (hop 320, 75 frames/s), 32 x 1024
RVQ over a 128-dim latent (1.5/3/6/12/24 kbps = 2/4/8/16/32 codebooks), causal convolutions that pad the left with a
*reflection* of the signal, weight norm, ELU, a 2-layer LSTM with a skip at the bottleneck of both networks.

Only the causal form is accepted. The 48 kHz stereo model is non-causal, splits the audio into 1 s chunks that
overlap by 1 %, normalises each chunk by its RMS (a scale sent next to the codes) and cross-fades the decoded chunks:
a step graph would have to see a whole second ahead, the `.apc` stream would need a per-chunk scale field, and the
chunks' overlap-add is not a step-by-step computation, so it does not fit the one-step causal design (README,
"EnCodec").

`start_frames` is EnCodec's one deviation from strict causality: its reflect padding makes the very first output
frames depend on the next few input frames (a reflection of x[1..p] sits before x[0]). The step graphs reproduce
that exactly by running the stream's first step over at least `start_frames` frames; every later step is causal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from apucodec.contract.config import CodeRate

FAMILY = "encodec"


@dataclass(frozen=True)
class EncodecConfig(CodeRate):
    KIND = "encodec"
    sample_rate: int = 24000
    channels: int = 1
    latent_dim: int = 128            # EnCodec's `dimension`; the codebook dim too (no projections)
    n_filters: int = 32
    ratios: tuple[int, ...] = (8, 5, 4, 2)   # decoder order (upsampling); the encoder uses them reversed
    n_residual_layers: int = 1
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    true_skip: bool = False
    lstm: int = 2
    causal: bool = True
    norm: str = "weight_norm"
    pad_mode: str = "reflect"
    trim_right_ratio: float = 1.0
    n_codebooks: int = 32
    codebook_size: int = 1024
    bandwidths: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0, 24.0)

    def __post_init__(self) -> None:
        if not self.causal:
            raise ValueError("only causal EnCodec models stream (the 48 kHz model is non-causal; see README)")
        if self.channels != 1:
            raise ValueError("only mono EnCodec models are supported")
        if self.pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', not {self.pad_mode!r}")
        if self.trim_right_ratio != 1.0:
            raise ValueError("only trim_right_ratio=1.0 (all of a causal transposed conv's trim on the right)")
        if self.norm not in ("weight_norm", "none"):
            raise ValueError(f"norm must be 'weight_norm' or 'none', not {self.norm!r}")

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    def frames_for(self, n_samples: int) -> int:
        """Causal strided convs over the input padded to whole frames: ceil(n / hop)."""
        return -(-n_samples // self.hop_length)

    def codebooks_for_bandwidth(self, kbps: float) -> int:
        """EnCodec's bandwidth -> codebooks (6 kbps -> 8 at 24 kHz), as its package computes it."""
        return int(1000 * kbps // (math.ceil(self.frame_rate) * self.bits_per_code))

    def _reflect_needs(self) -> list[tuple[int, int]]:
        """(samples per frame at a conv's input, its left padding) for every reflect-padded conv of both networks."""
        if self.pad_mode != "reflect":
            return []
        hop, needs = self.hop_length, []
        res = [(self.residual_kernel_size - 1) * self.dilation_base ** j for j in range(self.n_residual_layers)]
        rate = hop
        needs.append((rate, self.kernel_size - 1))
        for ratio in reversed(self.ratios):
            needs += [(rate, p) for p in res] + [(rate, ratio)]
            rate //= ratio
        needs.append((rate, self.last_kernel_size - 1))
        rate = 1
        needs.append((rate, self.kernel_size - 1))
        for ratio in self.ratios:
            rate *= ratio
            needs += [(rate, p) for p in res]
        needs.append((rate, self.last_kernel_size - 1))
        return needs

    @property
    def start_frames(self) -> int:
        """Frames the stream's first step must span so every reflection at the file's start is inside it."""
        return max((-(-(p + 1) // rate) for rate, p in self._reflect_needs() if p), default=1)
