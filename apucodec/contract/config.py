"""Every number that defines an APU-Codec network, in one frozen dataclass (torch-free: the runtime reads it).

The defaults are the published spec (32.4M parameters, 512x downsampling, 8 x 2048 RVQ over a 128-dim latent).
Smaller presets share the sample rate, hop, latent size and RVQ shape, so any checkpoint exports to the same model
directory contract and the runtime never needs to know which preset produced it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError

ACTIVATIONS = ("gelu", "leaky_relu")
NORMS = ("weight", "group", "none")
UPSAMPLE_INITS = ("default", "icnr")
# Codebooks a model may have: the .apc header's limit, checked in the manifest and in every .apc header.
MAX_CODEBOOKS = 64


def bits_per_code(codebook_size: int) -> int:
    """Bits one code takes in a .apc file (and in the bitrate): ceil(log2(codebook_size)), at least 1."""
    return max(1, math.ceil(math.log2(codebook_size)))


def codebooks_to_use(requested: int | None, available: int, model: str | Path | None = None) -> int:
    """`--codebooks` checked against the model's count (None: all of them); the error names the model if given."""
    n = available if requested is None else int(requested)
    if not 1 <= n <= available:
        at = f" ({model})" if model is not None else ""
        raise ApucodecError(f"--codebooks must be in 1..{available} for this model{at}, got {n}")
    return n


class CodeRate:
    """What every codec family's config (a frozen dataclass) derives alike: the code stream's rates from its sample
    rate, hop and RVQ shape (the family says only how its hop comes about), and its JSON form in the manifest."""

    KIND = "codec"  # names the config in messages

    sample_rate: int
    n_codebooks: int
    codebook_size: int

    @property
    def hop_length(self) -> int:
        raise NotImplementedError

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def bits_per_code(self) -> int:
        return bits_per_code(self.codebook_size)

    def bitrate(self, n_codebooks: int | None = None) -> float:
        """Bits per second of the code stream at `n_codebooks` (default: all)."""
        n = self.n_codebooks if n_codebooks is None else n_codebooks
        return self.frame_rate * n * self.bits_per_code

    def to_dict(self) -> dict[str, Any]:
        """Tuples as lists: the manifest's JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The inverse, refusing keys the config does not have (a newer apucodec's, or a typo)."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.KIND} config keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class CodecConfig(CodeRate):
    sample_rate: int = 44100
    # Channel width of the stem and after each encoder block; the decoder mirrors it.
    channels: tuple[int, ...] = (64, 128, 256, 512, 512)
    strides: tuple[int, ...] = (2, 4, 8, 8)
    latent_dim: int = 128
    residual_kernel: int = 7
    dilations: tuple[int, ...] = (1, 3, 9)
    activation: str = "gelu"
    # "weight": weight-normalised convs, no pooled statistics (chunk-safe, folded away at export).
    # "group": GroupNorm(1, C) before each residual unit, as the original APU-Codec seed did (not chunk-safe).
    norm: str = "weight"
    # Groups of each GroupNorm (norm="group"); the seed uses 1 (statistics over all channels). Must divide every
    # channel width.
    norm_groups: int = 1
    # Causal: every convolution padded on the left only and transposed convolutions trimmed on the right, so no
    # output depends on future input: zero lookahead, and the streaming latency is one step.
    causal: bool = False
    n_codebooks: int = 8
    codebook_size: int = 2048
    # EMA codebook learning: decay of the running cluster statistics, and the usage below which a code is "dead"
    # and gets restarted from a live residual.
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.02
    # Probability that a training item uses a random number of codebooks (1..n_codebooks), so inference can drop
    # codebooks for lower bitrates.
    quantizer_dropout: float = 0.5
    # Initialisation of the decoder's transposed convs. "default": torch's. "icnr": every output phase starts with
    # the same taps (nearest-neighbour upsampling followed by a 2-tap conv), so an untrained decoder adds no
    # frame-rate comb; the trained architecture and the exported graphs are identical either way.
    upsample_init: str = "default"

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.strides) + 1:
            raise ValueError("channels must have one more entry than strides (stem + one per block)")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {self.activation!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, not {self.norm!r}")
        if isinstance(self.norm_groups, bool) or not isinstance(self.norm_groups, int) or self.norm_groups < 1:
            raise ValueError(f"norm_groups must be a positive integer, not {self.norm_groups!r}")
        if self.upsample_init not in UPSAMPLE_INITS:
            raise ValueError(f"upsample_init must be one of {UPSAMPLE_INITS}, not {self.upsample_init!r}")
        if any(s % 2 for s in self.strides):
            raise ValueError("strides must be even (kernel 2*stride, padding stride//2 keeps lengths exact)")

    @property
    def hop_length(self) -> int:
        """Samples per latent frame (512 for the spec)."""
        return math.prod(self.strides)

    def frames_for(self, n_samples: int) -> int:
        """Latent frames the encoder produces for `n_samples` input samples (exact conv arithmetic)."""
        length = n_samples
        for s in self.strides:
            length = (length + 2 * (s // 2) - 2 * s) // s + 1
        return length


PRESETS: dict[str, CodecConfig] = {
    # The published APU-Codec network.
    "default": CodecConfig(),
    # The seed project's exact layout (GroupNorm), for loading its checkpoints.
    "seed": CodecConfig(norm="group"),
    # Small enough to train on a laptop CPU and to ship inside the wheel; same latent and RVQ contract.
    "small": CodecConfig(channels=(16, 32, 64, 128, 192), activation="leaky_relu"),
    # The small network made causal, for live voice links: algorithmic latency of one step.
    "small-causal": CodecConfig(channels=(16, 32, 64, 128, 192), activation="leaky_relu", causal=True),
    # For tests: seconds to train, still the full hop of 512.
    "tiny": CodecConfig(channels=(4, 8, 16, 16, 32), latent_dim=16, codebook_size=64, n_codebooks=4,
                        activation="leaky_relu", ema_decay=0.9, dead_code_threshold=0.05),
    "tiny-causal": CodecConfig(channels=(4, 8, 16, 16, 32), latent_dim=16, codebook_size=64, n_codebooks=4,
                               activation="leaky_relu", ema_decay=0.9, dead_code_threshold=0.05, causal=True),
}


def preset(name: str) -> CodecConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown config preset {name!r}; choose from {sorted(PRESETS)}") from None
