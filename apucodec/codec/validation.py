"""Validation during training: reconstruction loss, SI-SDR, mel distance and quantization error on held-out
segments with every codebook."""

from __future__ import annotations

import numpy as np
import torch

from apucodec.codec.losses import LossWeights, reconstruction_losses, total_loss
from apucodec.codec.model import APUCodec
from apucodec.dsp.metrics import mel_distance, si_sdr


@torch.no_grad()
def validate(model: APUCodec, segments: np.ndarray, device: torch.device, sample_rate: int,
             weights: LossWeights | None = None) -> dict[str, float]:
    """On held-out segments with every codebook: reconstruction loss, SI-SDR, mel distance, and the relative
    quantization error ||z - q(z)||^2 / ||z||^2 (the number that stays flat when codebooks do not learn)."""
    weights = weights or LossWeights()
    was_training = model.training
    model.eval()
    sdrs, mels, q_err, losses = [], [], [], []
    for start in range(0, len(segments), 8):
        x = torch.from_numpy(segments[start:start + 8]).to(device)
        out = model(x)
        err = (out.latent - out.quantized).pow(2).sum() / out.latent.pow(2).sum().clamp_min(1e-12)
        q_err.append(float(err))
        parts = reconstruction_losses(x, out.audio, sample_rate)
        parts["commitment"] = out.commitment_loss
        losses.append(float(total_loss(parts, weights)))
        for ref, est in zip(x.cpu().numpy(), out.audio.cpu().numpy(), strict=True):
            sdrs.append(si_sdr(ref, est))
            mels.append(mel_distance(ref, est, sample_rate))
    model.train(was_training)
    return {"loss": float(np.mean(losses)), "si_sdr": float(np.mean(sdrs)), "mel": float(np.mean(mels)),
            "quant_error": float(np.mean(q_err))}
