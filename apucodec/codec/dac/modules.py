"""DAC's encoder and decoder: weight-normed convolutions, Snake activations, residual units with dilations 1, 3, 9.

The layer order and indices inside each `nn.Sequential` are DAC's, because the checkpoint's keys are
`encoder.block.1.block.0.block.1.weight_v` and the like: a different order would load the wrong tensors.
Weight norm is DAC's (torch's classic `weight_norm`, dim 0): `weight = g * v / ||v||`, the norm taken over every
axis but the first (for a ConvTranspose1d that is per *input* channel, as torch's classic weight norm does it),
computed by the same kernel (`torch._weight_norm`) so the folded weights are DAC's to the last bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from apucodec.contract.dac_config import DacConfig


def _norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    return v.pow(2).sum(dim=tuple(range(1, v.dim())), keepdim=True).sqrt()


class _WeightNormed(nn.Module):
    """DAC's weight norm over a convolution's weight (`weight_v`, `weight_g`, DAC's key names) plus a bias: what
    both convolution kinds share; `plain()` gives the folded torch convolution that export traces."""

    def __init__(self, template: nn.Module) -> None:
        super().__init__()
        self.weight_v = nn.Parameter(template.weight.detach())  # torch's init, as DAC's
        self.weight_g = nn.Parameter(_norm_except_dim0(self.weight_v.detach()).clone())
        self.bias = nn.Parameter(torch.zeros(template.out_channels))

    @property
    def weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def _conv(self) -> nn.Module:
        raise NotImplementedError

    def plain(self) -> nn.Module:
        conv = self._conv()
        with torch.no_grad():
            conv.weight.copy_(self.weight)
            conv.bias.copy_(self.bias)
        return conv.eval().requires_grad_(False)


class WNConv1d(_WeightNormed):
    """Conv1d with DAC's weight norm."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 padding: int = 0) -> None:
        super().__init__(nn.Conv1d(c_in, c_out, kernel_size))
        self.stride, self.dilation, self.padding = stride, dilation, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def _conv(self) -> nn.Conv1d:
        c_out, c_in, kernel = self.weight_v.shape
        return nn.Conv1d(c_in, c_out, kernel, stride=self.stride, dilation=self.dilation, padding=self.padding)


class WNConvTranspose1d(_WeightNormed):
    """ConvTranspose1d with DAC's weight norm (per input channel) and its padding/output_padding."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 output_padding: int) -> None:
        super().__init__(nn.ConvTranspose1d(c_in, c_out, kernel_size, stride))
        self.stride, self.padding, self.output_padding = stride, padding, output_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)

    def _conv(self) -> nn.ConvTranspose1d:
        c_in, c_out, kernel = self.weight_v.shape
        return nn.ConvTranspose1d(c_in, c_out, kernel, stride=self.stride, padding=self.padding,
                                  output_padding=self.output_padding)


class Snake1d(nn.Module):
    """x + sin^2(alpha x) / (alpha + 1e-9), alpha per channel; written as DAC writes it (reciprocal, then
    multiply) so float32 results match its bit for bit. sin(ax)^2 as a product, not Pow: NPU op lists have Mul."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sin(self.alpha * x)
        return x + (self.alpha + 1e-9).reciprocal() * (s * s)


class ResidualUnit(nn.Module):
    """x + conv1x1(snake(conv7_dilated(snake(x)))), the skip centre-cropped if the branch came out shorter (it
    never does with DAC's "same" padding, but DAC's forward crops, so ours does too)."""

    def __init__(self, dim: int, dilation: int) -> None:
        super().__init__()
        pad = (7 - 1) * dilation // 2
        self.block = nn.Sequential(Snake1d(dim), WNConv1d(dim, dim, 7, dilation=dilation, padding=pad),
                                   Snake1d(dim), WNConv1d(dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        crop = (x.shape[-1] - y.shape[-1]) // 2
        if crop > 0:
            x = x[..., crop:-crop]
        return x + y


def _down(dim: int, stride: int) -> WNConv1d:
    return WNConv1d(dim // 2, dim, 2 * stride, stride=stride, padding=math.ceil(stride / 2))


def _up(c_in: int, c_out: int, stride: int) -> WNConvTranspose1d:
    """As descript-audio-codec 1.0.0 (the release its weights ship with) builds it: no output_padding, so an odd
    stride s yields s * L - 1 samples, and the decoded file comes out a few samples short of frames * hop."""
    return WNConvTranspose1d(c_in, c_out, 2 * stride, stride, math.ceil(stride / 2), 0)


def upsampling_shortfall(stride: int) -> int:
    """Samples by which `_up`'s output falls short of stride * input length: (L-1)s - 2p + 2s vs sL."""
    return 2 * math.ceil(stride / 2) - stride


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(ResidualUnit(dim // 2, 1), ResidualUnit(dim // 2, 3), ResidualUnit(dim // 2, 9),
                                   Snake1d(dim // 2), _down(dim, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DecoderBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(Snake1d(c_in), _up(c_in, c_out, stride), ResidualUnit(c_out, 1),
                                   ResidualUnit(c_out, 3), ResidualUnit(c_out, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DacEncoder(nn.Module):
    """[B, 1, T] audio (T a multiple of the hop) -> [B, latent_dim, T / hop]."""

    def __init__(self, cfg: DacConfig) -> None:
        super().__init__()
        width = cfg.encoder_dim
        layers: list[nn.Module] = [WNConv1d(1, width, 7, padding=3)]
        for stride in cfg.encoder_rates:
            width *= 2
            layers.append(EncoderBlock(width, stride))
        layers += [Snake1d(width), WNConv1d(width, cfg.latent_dim, 3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DacDecoder(nn.Module):
    """[B, latent_dim, F] -> [B, 1, F * hop] audio in [-1, 1]."""

    def __init__(self, cfg: DacConfig) -> None:
        super().__init__()
        width = cfg.decoder_dim
        layers: list[nn.Module] = [WNConv1d(cfg.latent_dim, width, 7, padding=3)]
        for i, stride in enumerate(cfg.decoder_rates):
            layers.append(DecoderBlock(width // 2**i, width // 2 ** (i + 1), stride))
        out = width // 2 ** len(cfg.decoder_rates)
        layers += [Snake1d(out), WNConv1d(out, 1, 7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
