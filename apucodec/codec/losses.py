"""Reconstruction losses: waveform L1, multi-resolution STFT and multi-scale log-mel (no GAN, by design).

L1 alone blurs high frequencies; the STFT terms (spectral convergence + log magnitude) at several resolutions
catch both transients and tonal detail; the log-mel term weights errors the way hearing does. The mel filters come
from apucodec.dsp.metrics so the training loss and the reported mel distance are literally the same quantity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from apucodec.dsp.metrics import MEL_SCALES, mel_filterbank

STFT_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128)


@dataclass(frozen=True)
class LossWeights:
    l1: float = 1.0
    stft: float = 1.0
    mel: float = 1.0
    commitment: float = 0.25


def _magnitude(audio: torch.Tensor, n_fft: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio.reshape(-1, audio.shape[-1]), n_fft, hop_length=n_fft // 4, window=window,
                      return_complex=True)
    return spec.abs().clamp_min(1e-5)  # floor: digital silence must not dominate the log terms


def stft_loss(target: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + log-magnitude L1."""
    total = target.new_zeros(())
    for n_fft in STFT_SIZES:
        t, e = _magnitude(target, n_fft), _magnitude(estimate, n_fft)
        convergence = torch.linalg.vector_norm(t - e) / torch.linalg.vector_norm(t).clamp_min(1e-7)
        total = total + convergence + F.l1_loss(t.log(), e.log())
    return total / len(STFT_SIZES)


def mel_loss(target: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean over scales of the L1 distance between log10-mel spectrograms."""
    total = target.new_zeros(())
    for n_fft, n_mels in MEL_SCALES:
        bank = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)).to(target)
        t = (bank @ _magnitude(target, n_fft)).clamp_min(1e-5).log10()
        e = (bank @ _magnitude(estimate, n_fft)).clamp_min(1e-5).log10()
        total = total + F.l1_loss(t, e)
    return total / len(MEL_SCALES)


def reconstruction_losses(target: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> dict[str, torch.Tensor]:
    return {
        "l1": F.l1_loss(estimate, target),
        "stft": stft_loss(target, estimate),
        "mel": mel_loss(target, estimate, sample_rate),
    }


def total_loss(parts: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    return (weights.l1 * parts["l1"] + weights.stft * parts["stft"] + weights.mel * parts["mel"]
            + weights.commitment * parts["commitment"])
