"""Residual vector quantizer whose codebooks actually learn.

The original APU-Codec training never moved its codebooks: the straight-through estimator fed only the encoder and
the commitment term was computed on detached tensors. Here each codebook is a k-means running in the loop:
  * codebooks start from data (random residual vectors of the first batch), not from noise;
  * they follow exponential moving averages of the residuals assigned to each code (SoundStream / VQ-VAE-2 style),
    which needs no gradient and cannot be forgotten by the optimiser;
  * codes whose running usage falls below a threshold are restarted on live residuals, so all 2048 stay useful;
  * the encoder is pulled towards its codes by a commitment loss;
  * quantizer dropout trains each item with a random number of codebooks, so 1..N codebooks all decode.
Under data-parallel training the EMA statistics are summed over ranks and rank 0 chooses the initial and the
restarted codewords (broadcast to the others), so every rank holds bit-identical codebooks without DDP having to
broadcast buffers. The quantizer always computes in float32, even inside a bf16 autocast region: nearest-code search
and running means in bf16 would pick wrong codes and lose small updates.
Codebooks are one buffer [n_codebooks, codebook_size, dim], exactly what export writes to codebooks.npy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from apucodec.codec import distributed
from apucodec.contract.config import CodecConfig


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor        # [B, D, T], straight-through: gradients reach the encoder unchanged
    codes: torch.Tensor            # [B, n_codebooks, T] int64
    commitment_loss: torch.Tensor  # scalar
    perplexity: torch.Tensor       # [n_codebooks] usage perplexity of this batch (2048 = uniform use)
    n_used: torch.Tensor           # [B] codebooks each item used


def nearest_codes(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codeword for each row of `vectors` [N, D] in `codebook` [K, D] (squared L2).

    ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, and ||x||^2 is the same for every c, so it is dropped: one GEMM.
    The NumPy runtime uses the identical formula so codes agree with training bit for bit, ties aside.
    """
    scores = codebook.pow(2).sum(1)[None, :] - 2.0 * vectors @ codebook.t()
    return scores.argmin(dim=1)


class ResidualVectorQuantizer(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, k, d = cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim
        self.register_buffer("codebooks", torch.randn(n, k, d))
        self.register_buffer("ema_count", torch.ones(n, k))
        self.register_buffer("ema_sum", self.codebooks.clone())
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def n_codebooks(self) -> int:
        return self.codebooks.shape[0]

    def forward(self, z: torch.Tensor, n_codebooks: int | None = None) -> QuantizerOutput:
        """Quantize z [B, D, T]. In training, updates the codebooks and applies quantizer dropout."""
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(z.float(), n_codebooks)

    def _quantize(self, z: torch.Tensor, n_codebooks: int | None) -> QuantizerOutput:
        batch, dim, frames = z.shape
        n_total = self.n_codebooks
        n_used = self._codebooks_per_item(batch, n_codebooks, z.device)
        if self.training and not bool(self.initialized):
            self._init_from_data(z.detach())

        residual = z.detach().transpose(1, 2).reshape(-1, dim)  # [B*T, D]; no gradient flows through the codes
        item_of_row = torch.arange(batch, device=z.device).repeat_interleave(frames)
        quantized = torch.zeros_like(residual)
        codes = []
        perplexity = []
        assignments = []  # (residual, codes) per level, for the EMA step after the loop
        for i in range(n_total):
            idx = nearest_codes(residual, self.codebooks[i])
            chosen = self.codebooks[i][idx]
            if self.training:
                assignments.append((residual, idx))
            active = (i < n_used[item_of_row]).unsqueeze(1).to(residual.dtype)
            quantized = quantized + chosen * active
            residual = residual - chosen
            codes.append(idx.view(batch, frames))
            perplexity.append(_perplexity(idx, self.cfg.codebook_size))
        if assignments:
            # Level i's update cannot change what levels > i saw (they used the codewords picked above), so all
            # levels update after the loop, with one all-reduce for all of them under data parallelism.
            self._ema_update(assignments)

        quantized = quantized.view(batch, frames, dim).transpose(1, 2)
        # The encoder is pulled towards the codes it was assigned (for the codebooks each item used).
        commitment = F.mse_loss(z, quantized.detach())
        straight_through = z + (quantized - z).detach()
        return QuantizerOutput(
            quantized=straight_through,
            codes=torch.stack(codes, dim=1),
            commitment_loss=commitment,
            perplexity=torch.stack(perplexity),
            n_used=n_used,
        )

    def _codebooks_per_item(self, batch: int, requested: int | None, device: torch.device) -> torch.Tensor:
        n_total = self.n_codebooks
        if requested is not None:
            if not 1 <= requested <= n_total:
                raise ValueError(f"n_codebooks must be in 1..{n_total}, got {requested}")
            return torch.full((batch,), requested, device=device)
        n_used = torch.full((batch,), n_total, device=device)
        if self.training and self.cfg.quantizer_dropout > 0:
            dropped = torch.rand(batch, device=device) < self.cfg.quantizer_dropout
            n_used[dropped] = torch.randint(1, n_total + 1, (int(dropped.sum()),), device=device)
        return n_used

    @torch.no_grad()
    def _init_from_data(self, z: torch.Tensor) -> None:
        """Start every codebook from residual vectors of real data (greedy: each level sees the previous levels).
        Under data parallelism rank 0's batch seeds them and the other ranks receive its codebooks."""
        if distributed.is_main():
            residual = z.transpose(1, 2).reshape(-1, z.shape[1])
            for i in range(self.n_codebooks):
                self.codebooks[i] = _sample_rows(residual, self.cfg.codebook_size)
                residual = residual - self.codebooks[i][nearest_codes(residual, self.codebooks[i])]
        distributed.broadcast_(self.codebooks)
        self.ema_sum.copy_(self.codebooks)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, assignments: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        decay = self.cfg.ema_decay
        k = self.cfg.codebook_size
        dim = self.ema_sum.shape[-1]
        # Counts and sums of this step's assignments for every level, packed to one [n, k, dim + 1] tensor so the
        # data-parallel sum over ranks is a single all-reduce.
        stats = self.ema_sum.new_zeros(len(assignments), k, dim + 1)
        for i, (residual, idx) in enumerate(assignments):
            stats[i, :, :dim].index_add_(0, idx, residual)
            stats[i, :, dim] = torch.bincount(idx, minlength=k).to(residual.dtype)
        distributed.all_reduce_sum_(stats)
        for i, (residual, _idx) in enumerate(assignments):
            self.ema_count[i].mul_(decay).add_(stats[i, :, dim], alpha=1 - decay)
            self.ema_sum[i].mul_(decay).add_(stats[i, :, :dim], alpha=1 - decay)
            # Laplace smoothing keeps rarely used codes from dividing by ~0.
            total = self.ema_count[i].sum()
            smoothed = (self.ema_count[i] + 1e-5) / (total + k * 1e-5) * total
            self.codebooks[i] = self.ema_sum[i] / smoothed.unsqueeze(1)

            # ema_count is identical on every rank, so is the set of dead codes; rank 0 picks their replacements.
            dead = self.ema_count[i] < self.cfg.dead_code_threshold
            n_dead = int(dead.sum())
            if n_dead:
                main = distributed.is_main()
                fresh = _sample_rows(residual, n_dead) if main else residual.new_empty(n_dead, dim)
                distributed.broadcast_(fresh)
                self.codebooks[i][dead] = fresh
                self.ema_sum[i][dead] = fresh
                self.ema_count[i][dead] = 1.0

    def quantize_codes(self, z: torch.Tensor, n_codebooks: int | None = None) -> torch.Tensor:
        """Codes [B, n, T] for latents [B, D, T], without touching the codebooks."""
        n = self.n_codebooks if n_codebooks is None else n_codebooks
        batch, dim, frames = z.shape
        residual = z.transpose(1, 2).reshape(-1, dim)
        codes = []
        for i in range(n):
            idx = nearest_codes(residual, self.codebooks[i])
            residual = residual - self.codebooks[i][idx]
            codes.append(idx.view(batch, frames))
        return torch.stack(codes, dim=1)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of looked-up codewords: codes [B, n, T] -> latent [B, D, T]."""
        out = 0
        for i in range(codes.shape[1]):
            out = out + self.codebooks[i][codes[:, i]]  # [B, T, D]
        return out.transpose(1, 2)


def _sample_rows(rows: torch.Tensor, n: int) -> torch.Tensor:
    """n rows drawn from `rows` (with replacement only when there are too few), plus a little noise so duplicates
    split apart instead of staying identical forever."""
    if rows.shape[0] >= n:
        picked = rows[torch.randperm(rows.shape[0], device=rows.device)[:n]]
    else:
        picked = rows[torch.randint(0, rows.shape[0], (n,), device=rows.device)]
    return picked + 1e-3 * rows.std() * torch.randn_like(picked)


def _perplexity(idx: torch.Tensor, k: int) -> torch.Tensor:
    probs = torch.bincount(idx, minlength=k).float()
    probs = probs / probs.sum().clamp_min(1)
    entropy = -(probs * (probs + 1e-10).log()).sum()
    return entropy.exp()
