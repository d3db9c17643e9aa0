"""Codec families: which architecture a model directory holds, and its config, read from the manifest (torch-free).

A family is an architecture the toolchain takes from a checkpoint to step graphs (ARCHITECTURE.md, "Codec
families"): the project's own (`apucodec`, which also covers the original project's GroupNorm checkpoints through
`norm="group"`), DAC and EnCodec. The manifest's `codec` mapping names it in `family` (absent: `apucodec`, so every
manifest written before families existed still reads), and the rest of that mapping is the family's own config.

The runtime computes with a narrow, shared face of every family's config (`FamilyConfig`): rates, hop, latent size,
RVQ shape, bitrate. Everything else in a config (layer widths, activations, LSTM sizes) matters only to the family's
own torch code in `apucodec.codec` and to export, so adding a family never touches the engine.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from apucodec.contract.config import CodecConfig
from apucodec.contract.dac_config import DacConfig
from apucodec.contract.encodec_config import EncodecConfig

FAMILY_KEY = "family"
DEFAULT_FAMILY = "apucodec"


@runtime_checkable
class FamilyConfig(Protocol):
    """What the runtime, the `.apc` format and the manifest checks read from any family's config."""

    sample_rate: int
    latent_dim: int
    n_codebooks: int
    codebook_size: int

    @property
    def hop_length(self) -> int: ...

    @property
    def frame_rate(self) -> float: ...

    @property
    def bits_per_code(self) -> int: ...

    def bitrate(self, n_codebooks: int | None = None) -> float: ...

    def frames_for(self, n_samples: int) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


def _registry() -> dict[str, Any]:
    """Family name -> its config class (each a frozen dataclass with `from_dict`/`to_dict`). One line per family."""
    return {
        DEFAULT_FAMILY: CodecConfig,
        "dac": DacConfig,
        "encodec": EncodecConfig,
    }


def codebook_shape(config: FamilyConfig) -> tuple[int, int, int]:
    """[n_codebooks, codebook_size, dim] of codebooks.npy: dim is the latent's, or a factorized family's
    `codebook_dim` (DAC searches each codebook in a projected space; apucodec/model/rvq_projections.py)."""
    return config.n_codebooks, config.codebook_size, int(getattr(config, "codebook_dim", config.latent_dim))


def family_names() -> tuple[str, ...]:
    return tuple(_registry())


def family_of(codec: dict[str, Any]) -> str:
    """The family a manifest's `codec` mapping names (absent: the project's own)."""
    family = codec.get(FAMILY_KEY, DEFAULT_FAMILY)
    if family not in _registry():
        raise ValueError(f"unknown codec family {family!r}; this apucodec knows {sorted(_registry())}")
    return str(family)


def config_from_codec(codec: dict[str, Any]) -> FamilyConfig:
    """A manifest's `codec` mapping -> the family's config object (ValueError on unknown family or keys)."""
    family = family_of(codec)
    fields = {k: v for k, v in codec.items() if k != FAMILY_KEY}
    return _registry()[family].from_dict(fields)


def codec_from_config(config: FamilyConfig) -> dict[str, Any]:
    """The inverse: the `codec` mapping a manifest stores for `config` (the family key only for other families,
    so the project's own manifests stay byte for byte as before)."""
    for name, cls in _registry().items():
        if type(config) is cls:
            data = config.to_dict()
            return data if name == DEFAULT_FAMILY else {FAMILY_KEY: name, **data}
    raise ValueError(f"{type(config).__name__} is not a registered codec family config")
