"""EnCodec's building blocks as plain torch modules (weight norm already folded into the weights at load).

Module and attribute names mirror the `encodec` package's (`conv`, `convtr`, `block`, `shortcut`, `lstm`), minus its
wrapper levels, so a pretrained state dict maps onto them by a fixed rename (apucodec/codec/encodec/checkpoint.py).

The convolutions subclass the project's `CausalConv1d` / `CausalConvTranspose1d`, so the step-graph machinery in
apucodec/export/streaming.py reads their left padding as it does for the project's own causal models; only the
padding *values* differ: EnCodec pads the left with a reflection of the signal (pad_mode 'reflect'), and pads the
right of a strided conv so its last window is full (never needed on whole frames, which the toolchain feeds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apucodec.codec.modules import CausalConv1d, CausalConvTranspose1d


def reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """EnCodec's pad1d(mode='reflect'): a signal no longer than the padding is zero-extended before reflecting."""
    length, most = x.shape[-1], max(left, right)
    extra = most - length + 1 if length <= most else 0
    if extra:
        x = F.pad(x, (0, extra))
    padded = F.pad(x, (left, right), mode="reflect")
    return padded[..., : padded.shape[-1] - extra]


class SConv(CausalConv1d):
    """EnCodec's causal SConv1d: left padding (k-1)*d - (s-1), reflected (or zeros), plus the right padding
    that completes the last strided window."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, stride: int = 1, dilation: int = 1,
                 pad_mode: str = "reflect") -> None:
        super().__init__(c_in, c_out, kernel, stride=stride, dilation=dilation,
                         left_padding=(kernel - 1) * dilation - (stride - 1))
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride, kernel = self.stride[0], (self.kernel_size[0] - 1) * self.dilation[0] + 1
        pad = self.left_padding
        frames = -(-(x.shape[-1] - kernel + pad) // stride) + 1
        extra = (frames - 1) * stride + kernel - pad - x.shape[-1]
        reflect = self.pad_mode == "reflect" and (pad or extra)
        x = reflect_pad(x, pad, extra) if reflect else F.pad(x, (pad, extra))
        return self._conv_forward(x, self.weight, self.bias)


class SConvTranspose(CausalConvTranspose1d):
    """EnCodec's causal SConvTranspose1d with trim_right_ratio 1: all kernel - stride samples trimmed on the right."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(c_in, c_out, kernel, stride=stride, trim=kernel - stride)


class ResBlock(nn.Module):
    """SEANet residual block: shortcut(x) + conv(ELU(conv(ELU(x)))) (shortcut: 1x1 conv, or identity)."""

    def __init__(self, dim: int, kernel: int, dilation: int, compress: int, true_skip: bool, pad_mode: str) -> None:
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(nn.ELU(), SConv(dim, hidden, kernel, dilation=dilation, pad_mode=pad_mode),
                                   nn.ELU(), SConv(hidden, dim, 1, pad_mode=pad_mode))
        self.shortcut: nn.Module = nn.Identity() if true_skip else SConv(dim, dim, 1, pad_mode=pad_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class SLSTM(nn.Module):
    """Multi-layer LSTM over [B, C, T] with the skip y = lstm(x) + x."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.permute(2, 0, 1)
        y, _ = self.lstm(seq)
        return (y + seq).permute(1, 2, 0)
