"""DacModel: encoder, quantizer, decoder, with the face the export pipeline reads (`config`, `encoder`,
`quantizer.quantize_codes/dequantize/codebooks`, `decoder`, `param_count`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apucodec.codec.dac.modules import DacDecoder, DacEncoder
from apucodec.codec.dac.quantizer import DacQuantizer
from apucodec.contract.dac_config import DacConfig


class DacModel(nn.Module):
    def __init__(self, config: DacConfig | None = None) -> None:
        super().__init__()
        self.config = config or DacConfig()
        self.encoder = DacEncoder(self.config)
        self.quantizer = DacQuantizer(self.config)
        self.decoder = DacDecoder(self.config)

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def preprocess(self, audio: torch.Tensor) -> torch.Tensor:
        """Right-pad [B, 1, T] to a whole number of hops, as DAC.preprocess does."""
        hop = self.config.hop_length
        return F.pad(audio, (0, -(-audio.shape[-1] // hop) * hop - audio.shape[-1]))

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        """[B, 1, T] -> codes [B, n, ceil(T / hop)]."""
        return self.quantizer.quantize_codes(self.encoder(self.preprocess(audio)), n_codebooks)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.dequantize(codes))
