"""Helpers for the EnCodec tests: a small EnCodec-shaped config, and an `encodec`-package-format state dict made
from an EncodecNet without the package (weight split into weight_g / weight_v, the package's wrapper names)."""

from __future__ import annotations

import torch

from apucodec.codec.encodec.layers import SConv, SConvTranspose
from apucodec.codec.encodec.model import EncodecNet
from apucodec.contract.encodec_config import EncodecConfig

# The 24 kHz model's ratios (hop 320) and layer layout at toy width: exports and streams in seconds.
SMALL = EncodecConfig(latent_dim=16, n_filters=2, n_codebooks=8, codebook_size=1024)


def small_model(seed: int = 0) -> EncodecNet:
    """Seeded weights; codebooks drawn from the residuals of a noise signal (+ noise), so codes vary over time
    (codebooks around zero would pick one codeword: random-weight latents sit at a per-channel offset)."""
    torch.manual_seed(seed)
    model = EncodecNet(SMALL).eval()
    with torch.no_grad():
        residual = model.encoder(torch.randn(1, 1, 80 * SMALL.hop_length) * 0.3)[0].T
        for book in model.quantizer.codebooks:
            picks = torch.randint(0, residual.shape[0], (book.shape[0],))
            book.copy_(residual[picks] + 0.5 * torch.randn(book.shape) * residual.std(0))
            scores = (residual.pow(2).sum(-1, keepdim=True) - 2 * residual @ book.T + book.pow(2).sum(-1))
            residual = residual - book[scores.argmin(-1)]
    return model


def package_state_dict(model: EncodecNet) -> dict[str, torch.Tensor]:
    """What `EncodecModel.state_dict()` holds for these weights (weight norm with g = ||v||, so w = v)."""
    state: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, (SConv, SConvTranspose)):
            wrapper = "convtr.convtr" if isinstance(module, SConvTranspose) else "conv.conv"
            v = module.weight.detach().clone()
            g = v.reshape(v.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
            state[f"{name}.{wrapper}.weight_g"], state[f"{name}.{wrapper}.weight_v"] = g, v
            state[f"{name}.{wrapper}.bias"] = module.bias.detach().clone()
    for key, value in model.state_dict().items():
        if ".lstm." in key:
            state[key] = value.clone()
    for level, book in enumerate(model.quantizer.codebooks):
        prefix = f"quantizer.vq.layers.{level}._codebook."
        state[prefix + "inited"] = torch.ones(1)
        state[prefix + "cluster_size"] = torch.ones(book.shape[0])
        state[prefix + "embed"] = book.clone()
        state[prefix + "embed_avg"] = book.clone()
    return state
