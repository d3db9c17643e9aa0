"""Encoder and decoder networks of APU-Codec (torch).

Module and attribute names follow the original APU-Codec seed (`input_conv`, `blocks.N.res1.conv1`,
`blocks.N.downsample`, `blocks.N.upsample`, `output_conv`) so that with `norm="group"` a seed state dict loads
key-for-key. With `norm="weight"` (the default for new models) convolutions are weight-normalised through torch's
parametrizations and there is no norm layer: nothing pools over time, so a step of audio sees exactly the
computation it would see inside the whole file, which is what the step graphs' exact streaming relies on.

`causal=True` pads every convolution on the left only and trims transposed convolutions on the right, so no output
depends on later input (the streaming lookahead is zero). Parameter names are the same either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from apucodec.codec.init import init_upsampler
from apucodec.contract.config import CodecConfig


def make_activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.1)
    raise ValueError(f"unknown activation {name!r}")


def _normed(conv: nn.Module, norm: str) -> nn.Module:
    return weight_norm(conv) if norm == "weight" else conv


class CausalConv1d(nn.Conv1d):
    """Conv1d whose zero padding is all on the left: output t sees inputs up to t*stride only."""

    def __init__(self, *args, left_padding: int, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        self.left_padding = left_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(F.pad(x, (self.left_padding, 0)), self.weight, self.bias)


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """ConvTranspose1d without padding, trimmed on the right to exactly in_len * stride samples."""

    def __init__(self, *args, trim: int, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        self.trim = trim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y[..., : y.shape[-1] - self.trim] if self.trim else y


def left_padding(conv: nn.Module) -> int:
    """Zeros a (transposed) convolution puts before its input (Conv1d) or crops from its output's start
    (ConvTranspose1d): what streaming needs to align each layer's output with the whole-file output."""
    if isinstance(conv, CausalConv1d):
        return conv.left_padding
    if isinstance(conv, CausalConvTranspose1d):
        return 0
    return int(conv.padding[0])


def conv1d(cfg: CodecConfig, c_in: int, c_out: int, kernel: int, *, stride: int = 1, dilation: int = 1,
           padding: int | None = None) -> nn.Module:
    """A length-preserving (or exactly strided) Conv1d, weight-normalised when the config asks for it."""
    if cfg.causal:
        total = dilation * (kernel - 1) + 1 - stride  # all of a same-length conv's padding, put on the left
        conv: nn.Module = CausalConv1d(c_in, c_out, kernel, stride=stride, dilation=dilation, left_padding=total)
        return _normed(conv, cfg.norm)
    if padding is None:
        padding = dilation * (kernel - 1) // 2
    conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, dilation=dilation, padding=padding)
    return _normed(conv, cfg.norm)


def conv_transpose1d(cfg: CodecConfig, c_in: int, c_out: int, stride: int) -> nn.Module:
    """Upsampling by exactly `stride`: kernel 2*stride, padding stride//2 gives out_len = in_len * stride (causal:
    no padding, the last `stride` samples trimmed)."""
    if cfg.causal:
        return _normed(CausalConvTranspose1d(c_in, c_out, 2 * stride, stride=stride, trim=stride), cfg.norm)
    conv = nn.ConvTranspose1d(c_in, c_out, 2 * stride, stride=stride, padding=stride // 2)
    init_upsampler(conv, cfg.upsample_init)
    return _normed(conv, cfg.norm)


class ResidualUnit(nn.Module):
    """[norm] -> Conv1d(k, dilation d) -> act -> Conv1d(k1) -> act, added to the input."""

    def __init__(self, cfg: CodecConfig, channels: int, dilation: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(cfg.norm_groups, channels) if cfg.norm == "group" else nn.Identity()
        self.conv1 = conv1d(cfg, channels, channels, cfg.residual_kernel, dilation=dilation)
        self.act1 = make_activation(cfg.activation)
        self.conv2 = conv1d(cfg, channels, channels, 1)
        self.act2 = make_activation(cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act2(self.conv2(self.act1(self.conv1(self.norm(x)))))


# One layer of a network, in the order forward applies them: (kind, state_dict name, module). kind is "conv" (a
# (transposed) convolution), "act" (a stateless per-sample function) or "residual" (a ResidualUnit). Export builds
# the step graphs from this list (apucodec/export/streaming.py), and forward runs the same list, so the two cannot
# describe different networks.
Layer = tuple[str, str, nn.Module]


def run_layers(layers: list[Layer], x: torch.Tensor) -> torch.Tensor:
    for _, _, module in layers:
        x = module(x)
    return x


class _ResidualStack(nn.Module):
    """Residual units named res1, res2, ... (the seed's names), one per dilation."""

    def __init__(self, cfg: CodecConfig, channels: int) -> None:
        super().__init__()
        self._unit_names = [f"res{i}" for i in range(1, len(cfg.dilations) + 1)]
        for name, dilation in zip(self._unit_names, cfg.dilations, strict=True):
            self.add_module(name, ResidualUnit(cfg, channels, dilation))

    def units(self, prefix: str = "") -> list[Layer]:
        """The residual units, in order, as layers named under `prefix`."""
        return [("residual", f"{prefix}{name}", getattr(self, name)) for name in self._unit_names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_layers(self.layers(), x)

    def layers(self, prefix: str = "") -> list[Layer]:
        raise NotImplementedError


class EncoderBlock(_ResidualStack):
    def __init__(self, cfg: CodecConfig, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(cfg, c_in)
        self.downsample = conv1d(cfg, c_in, c_out, 2 * stride, stride=stride, padding=stride // 2)
        self.act = make_activation(cfg.activation)

    def layers(self, prefix: str = "") -> list[Layer]:
        """Residual units, then the strided convolution and its activation."""
        return [*self.units(prefix), ("conv", f"{prefix}downsample", self.downsample),
                ("act", f"{prefix}act", self.act)]


class DecoderBlock(_ResidualStack):
    def __init__(self, cfg: CodecConfig, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(cfg, c_out)
        self.upsample = conv_transpose1d(cfg, c_in, c_out, stride)
        self.act = make_activation(cfg.activation)

    def layers(self, prefix: str = "") -> list[Layer]:
        """The upsampling transposed convolution and its activation, then the residual units."""
        return [("conv", f"{prefix}upsample", self.upsample), ("act", f"{prefix}act", self.act), *self.units(prefix)]


class Encoder(nn.Module):
    """[B, 1, T] audio -> [B, latent_dim, T / hop] latent."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        ch = cfg.channels
        self.input_conv = conv1d(cfg, 1, ch[0], 7)
        self.input_act = make_activation(cfg.activation)
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg, ch[i], ch[i + 1], s) for i, s in enumerate(cfg.strides)
        )
        self.output_conv = conv1d(cfg, ch[-1], cfg.latent_dim, 3)

    def layers(self) -> list[Layer]:
        """Every layer forward runs, in order (see `Layer`)."""
        inner = [layer for i, block in enumerate(self.blocks) for layer in block.layers(f"blocks.{i}.")]
        return [("conv", "input_conv", self.input_conv), ("act", "input_act", self.input_act), *inner,
                ("conv", "output_conv", self.output_conv)]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return run_layers(self.layers(), audio)


class Decoder(nn.Module):
    """[B, latent_dim, F] quantized latent -> [B, 1, F * hop] audio in [-1, 1]."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        ch = tuple(reversed(cfg.channels))
        strides = tuple(reversed(cfg.strides))
        self.input_conv = conv1d(cfg, cfg.latent_dim, ch[0], 3)
        self.input_act = make_activation(cfg.activation)
        self.blocks = nn.ModuleList(
            DecoderBlock(cfg, ch[i], ch[i + 1], s) for i, s in enumerate(strides)
        )
        self.output_conv = conv1d(cfg, ch[-1], 1, 7)
        self.output_act = nn.Tanh()  # no parameters: the seed's state dict is unchanged

    def layers(self) -> list[Layer]:
        """Every layer forward runs, in order (see `Layer`)."""
        inner = [layer for i, block in enumerate(self.blocks) for layer in block.layers(f"blocks.{i}.")]
        return [("conv", "input_conv", self.input_conv), ("act", "input_act", self.input_act), *inner,
                ("conv", "output_conv", self.output_conv), ("act", "output_act", self.output_act)]

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return run_layers(self.layers(), latent)
