"""EnCodec's SEANet encoder and decoder, and its RVQ (plain nearest codeword, no projections), in torch.

Built from an `EncodecConfig` in the very layer order of the `encodec` package (`model.N` indices match), so its
state dict loads after a fixed rename. This is the whole-file reference the step graphs are checked against.
"""

from __future__ import annotations

import torch
from torch import nn

from apucodec.codec.encodec.layers import SLSTM, ResBlock, SConv, SConvTranspose
from apucodec.contract.encodec_config import EncodecConfig


def _res_blocks(cfg: EncodecConfig, dim: int) -> list[nn.Module]:
    return [ResBlock(dim, cfg.residual_kernel_size, cfg.dilation_base ** j, cfg.compress, cfg.true_skip,
                     cfg.pad_mode) for j in range(cfg.n_residual_layers)]


class SEANetEncoder(nn.Module):
    """[B, 1, T] audio (T whole frames) -> [B, latent, T / hop]."""

    def __init__(self, cfg: EncodecConfig) -> None:
        super().__init__()
        mult, nf = 1, cfg.n_filters
        layers: list[nn.Module] = [SConv(cfg.channels, nf, cfg.kernel_size, pad_mode=cfg.pad_mode)]
        for ratio in reversed(cfg.ratios):
            layers += _res_blocks(cfg, mult * nf)
            layers += [nn.ELU(), SConv(mult * nf, 2 * mult * nf, 2 * ratio, stride=ratio, pad_mode=cfg.pad_mode)]
            mult *= 2
        if cfg.lstm:
            layers.append(SLSTM(mult * nf, cfg.lstm))
        layers += [nn.ELU(), SConv(mult * nf, cfg.latent_dim, cfg.last_kernel_size, pad_mode=cfg.pad_mode)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """[B, latent, F] -> [B, 1, F * hop] audio (no final activation, as in the 24 kHz model)."""

    def __init__(self, cfg: EncodecConfig) -> None:
        super().__init__()
        nf = cfg.n_filters
        mult = 2 ** len(cfg.ratios)
        layers: list[nn.Module] = [SConv(cfg.latent_dim, mult * nf, cfg.kernel_size, pad_mode=cfg.pad_mode)]
        if cfg.lstm:
            layers.append(SLSTM(mult * nf, cfg.lstm))
        for ratio in cfg.ratios:
            layers += [nn.ELU(), SConvTranspose(mult * nf, mult * nf // 2, 2 * ratio, ratio)]
            layers += _res_blocks(cfg, mult * nf // 2)
            mult //= 2
        layers += [nn.ELU(), SConv(nf, cfg.channels, cfg.last_kernel_size, pad_mode=cfg.pad_mode)]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


class EncodecRVQ(nn.Module):
    """Residual VQ over [n_codebooks, codebook_size, latent] codebooks: argmin ||r - c||^2 per level."""

    def __init__(self, cfg: EncodecConfig) -> None:
        super().__init__()
        self.register_buffer("codebooks", torch.zeros(cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim))

    def quantize_codes(self, latent: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        """[B, D, F] -> codes [B, n, F] (int64)."""
        n = self.codebooks.shape[0] if n_codebooks is None else n_codebooks
        residual = latent.transpose(1, 2)
        codes = []
        for level in range(n):
            book = self.codebooks[level]
            dist = (residual.pow(2).sum(-1, keepdim=True) - 2 * residual @ book.t() + book.pow(2).sum(-1))
            idx = dist.argmin(-1)
            codes.append(idx)
            residual = residual - book[idx]
        return torch.stack(codes, dim=1)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n, F] -> quantized latent [B, D, F]."""
        out = sum(self.codebooks[level][codes[:, level]] for level in range(codes.shape[1]))
        return out.transpose(1, 2)


class EncodecNet(nn.Module):
    """EnCodec 24 kHz (or any causal mono EnCodec-shaped config): encoder, RVQ, decoder."""

    def __init__(self, config: EncodecConfig) -> None:
        super().__init__()
        self.config = config
        self.weight_norm_folded = 0   # set by the state-dict loader: weight-normed tensors folded at load
        self.encoder = SEANetEncoder(config)
        self.decoder = SEANetDecoder(config)
        self.quantizer = EncodecRVQ(config)

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        return self.quantizer.quantize_codes(self.encoder(audio), n_codebooks)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.dequantize(codes))
