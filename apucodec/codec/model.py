"""APUCodec: encoder -> residual vector quantizer -> decoder, as one torch module."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from apucodec.codec.modules import Decoder, Encoder
from apucodec.codec.quantizer import ResidualVectorQuantizer
from apucodec.contract.config import CodecConfig


@dataclass
class CodecOutput:
    audio: torch.Tensor            # [B, 1, T] reconstruction
    latent: torch.Tensor           # [B, D, F] encoder output
    quantized: torch.Tensor        # [B, D, F]
    codes: torch.Tensor            # [B, n_codebooks, F]
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor       # [n_codebooks]


class APUCodec(nn.Module):
    def __init__(self, config: CodecConfig | None = None) -> None:
        super().__init__()
        self.config = config or CodecConfig()
        self.encoder = Encoder(self.config)
        self.quantizer = ResidualVectorQuantizer(self.config)
        self.decoder = Decoder(self.config)

    @property
    def param_count(self) -> int:
        """Parameters of the network including the codebooks (which are buffers here, learned by EMA rather than
        by the optimiser, but are just as much part of the model as they were in the seed)."""
        trainable = sum(p.numel() for p in self.parameters())
        return trainable + self.quantizer.codebooks.numel()

    def forward(self, audio: torch.Tensor, n_codebooks: int | None = None) -> CodecOutput:
        length = audio.shape[-1]
        latent = self.encoder(audio)
        q = self.quantizer(latent, n_codebooks)
        recon = self.decoder(q.quantized)[..., :length]
        return CodecOutput(recon, latent, q.quantized, q.codes, q.commitment_loss, q.perplexity)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        """[B, 1, T] audio -> [B, n, F] codes."""
        return self.quantizer.quantize_codes(self.encoder(audio), n_codebooks)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, n, F] codes -> [B, 1, F * hop] audio."""
        return self.decoder(self.quantizer.dequantize(codes))
