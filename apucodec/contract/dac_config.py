"""DAC's config (descript-audio-codec's `DAC(...)` constructor arguments), torch-free: the runtime reads it.

DAC (Kumar et al. 2023) is APU-Codec's ancestor with Snake activations and a factorized RVQ: each codebook searches
in a small `codebook_dim` space reached through a 1x1 projection of the `latent_dim` residual, with L2-normalized
codes. The field names are DAC's own keyword arguments, so `metadata.kwargs` of a `DAC.save(path, package=False)`
checkpoint maps onto this class one to one (`from_dac_kwargs`). Defaults are the 44.1 kHz release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from apucodec.contract.config import MAX_CODEBOOKS, CodeRate

FAMILY = "dac"
# DAC constructor arguments that only matter to training (ignored when a checkpoint's kwargs are read).
TRAINING_ONLY_KWARGS = ("quantizer_dropout",)


@dataclass(frozen=True)
class DacConfig(CodeRate):
    KIND = "DAC"
    sample_rate: int = 44100
    encoder_dim: int = 64
    encoder_rates: tuple[int, ...] = (2, 4, 8, 8)
    # The encoder's output width and the RVQ's input: DAC's default is encoder_dim * 2 ** len(encoder_rates).
    latent_dim: int = 1024
    decoder_dim: int = 1536
    decoder_rates: tuple[int, ...] = (8, 8, 4, 2)
    n_codebooks: int = 9
    codebook_size: int = 1024
    # Width of the space each codebook searches (in_proj: latent_dim -> codebook_dim, out_proj back).
    codebook_dim: int = 8

    def __post_init__(self) -> None:
        ints = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.endswith("_rates")}
        bad = [k for k, v in ints.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        if bad:
            raise ValueError(f"DAC config fields must be positive integers: {', '.join(bad)}")
        for name in ("encoder_rates", "decoder_rates"):
            rates = getattr(self, name)
            if not rates or any(not isinstance(r, int) or isinstance(r, bool) or r < 1 for r in rates):
                raise ValueError(f"DAC config {name} must be a non-empty list of positive integers, got {rates!r}")
        if math.prod(self.encoder_rates) != math.prod(self.decoder_rates):
            raise ValueError(f"encoder_rates {list(self.encoder_rates)} and decoder_rates {list(self.decoder_rates)} "
                             "do not have the same product (the hop)")
        if self.decoder_dim % 2 ** len(self.decoder_rates):
            raise ValueError(f"decoder_dim {self.decoder_dim} must be divisible by 2 ** {len(self.decoder_rates)}")
        if self.n_codebooks > MAX_CODEBOOKS or self.codebook_size < 2:
            raise ValueError(f"DAC RVQ of {self.n_codebooks} x {self.codebook_size} is outside what .apc stores")

    @property
    def hop_length(self) -> int:
        return math.prod(self.encoder_rates)

    def frames_for(self, n_samples: int) -> int:
        """DAC's `preprocess` right-pads the input to a whole number of hops, so every started frame counts."""
        return -(-n_samples // self.hop_length)

    @classmethod
    def from_dac_kwargs(cls, kwargs: dict[str, Any]) -> DacConfig:
        """`metadata.kwargs` of a DAC checkpoint -> config (latent_dim None means DAC's default width)."""
        data = {k: v for k, v in kwargs.items() if k not in TRAINING_ONLY_KWARGS}
        data = {k: [int(r) for r in v] if isinstance(v, (list, tuple)) else v for k, v in data.items()}
        if data.get("latent_dim") is None:
            encoder_dim = int(data.get("encoder_dim", cls.encoder_dim))
            rates = data.get("encoder_rates", cls.encoder_rates)
            data["latent_dim"] = encoder_dim * 2 ** len(rates)
        return cls.from_dict(data)
