"""A tiny DAC-family model for tests: DAC's checkpoint format, written by our own torch code (no reference package).

Odd stride (5) on purpose: DAC 1.0.0's transposed convolutions then end the whole-file output early, the case
the step graphs' `shorten` handles. Seeded random weights: Snake alphas away from 1, non-zero biases.
"""

from __future__ import annotations

from pathlib import Path

TINY_DAC_KWARGS = {"encoder_dim": 4, "encoder_rates": [2, 4, 5], "latent_dim": 8, "decoder_dim": 16,
                   "decoder_rates": [5, 4, 2], "n_codebooks": 3, "codebook_size": 32, "codebook_dim": 4,
                   "quantizer_dropout": False, "sample_rate": 16000}


def tiny_dac(seed: int = 0, kwargs: dict | None = None):
    import torch

    from apucodec.codec.dac.model import DacModel
    from apucodec.contract.dac_config import DacConfig

    torch.manual_seed(seed)
    model = DacModel(DacConfig.from_dac_kwargs(dict(kwargs or TINY_DAC_KWARGS)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha"):
                p.uniform_(0.5, 2.0)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.02)
    return model.eval()


def save_dac_checkpoint(model, path: Path, kwargs: dict | None = None) -> Path:
    """As `DAC.save(path, package=False)` writes it: state_dict + metadata.kwargs."""
    import torch

    torch.save({"state_dict": model.state_dict(), "metadata": {"kwargs": dict(kwargs or TINY_DAC_KWARGS)}}, path)
    return path
