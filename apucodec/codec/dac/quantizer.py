"""DAC's residual vector quantizer: per codebook, project the residual down (in_proj), find the nearest
L2-normalized codeword, project the raw codeword back up (out_proj), subtract.

Inference only (no losses, no dropout): export needs the codes and the dequantized latent, and the NumPy stage
(apucodec/runtime/rvq_projected.py) must reproduce exactly this arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apucodec.codec.dac.modules import WNConv1d
from apucodec.contract.dac_config import DacConfig


class VectorQuantize(nn.Module):
    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.in_proj = WNConv1d(input_dim, codebook_dim, 1)
        self.out_proj = WNConv1d(codebook_dim, input_dim, 1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """[B, D, T] residual -> [B, T] codes: max cosine, written as DAC's min distance of normalized vectors."""
        z_e = self.in_proj(z)
        enc = F.normalize(z_e.transpose(1, 2).reshape(-1, z_e.shape[1]))
        book = F.normalize(self.codebook.weight)
        dist = enc.pow(2).sum(1, keepdim=True) - 2 * enc @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        return (-dist).max(1)[1].reshape(z.shape[0], -1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, T] codes -> [B, D, T]: the raw (un-normalized) codeword through out_proj."""
        return self.out_proj(F.embedding(codes, self.codebook.weight).transpose(1, 2))


class DacQuantizer(nn.Module):
    """The face export and parity use: `quantize_codes` [B, D, T] -> [B, n, T], `dequantize` back, `codebooks`."""

    def __init__(self, cfg: DacConfig) -> None:
        super().__init__()
        self.quantizers = nn.ModuleList(VectorQuantize(cfg.latent_dim, cfg.codebook_size, cfg.codebook_dim)
                                        for _ in range(cfg.n_codebooks))

    @property
    def codebooks(self) -> torch.Tensor:
        """[n, codebook_size, codebook_dim], un-normalized, as DAC stores them."""
        return torch.stack([q.codebook.weight for q in self.quantizers])

    def quantize_codes(self, z: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        """Codes [B, n, T]. The residual is updated as DAC's forward does it: out_proj(z_e + (codeword - z_e)),
        its straight-through form, which in float32 is not bit-equal to out_proj(codeword); keeping it keeps later
        codebooks' near-ties resolved as DAC resolves them."""
        residual = z
        codes = []
        for q in self.quantizers[: n_codebooks or len(self.quantizers)]:
            c = q.codes(residual)
            codes.append(c)
            z_e = q.in_proj(residual)
            word = F.embedding(c, q.codebook.weight).transpose(1, 2)
            residual = residual - q.out_proj(z_e + (word - z_e))
        return torch.stack(codes, dim=1)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        out = 0
        for i in range(codes.shape[1]):
            out = out + self.quantizers[i].decode_codes(codes[:, i])
        return out  # type: ignore[return-value]

    def projections(self) -> dict[str, torch.Tensor]:
        """Folded 1x1 projections, stacked per codebook: what the model directory stores beside the codebooks."""
        def stack(name: str, attr: str) -> torch.Tensor:
            return torch.stack([getattr(getattr(q, name), attr).detach().squeeze(-1) for q in self.quantizers])

        return {"in_weight": stack("in_proj", "weight"), "in_bias": stack("in_proj", "bias"),
                "out_weight": stack("out_proj", "weight"), "out_bias": stack("out_proj", "bias")}
