"""Turn a training module into the plain network that gets exported: weight norm folded, eval mode, no grads.

Weight norm is a reparametrisation (w = g * v / ||v||) that only matters to the optimiser; left in, it exports as
a norm + div + mul subgraph in front of every conv, recomputed on every inference and awkward for the NPU's
quantizer. Folding writes the effective weight into a plain Conv.

Why not `remove_parametrizations` on a deep copy: torch's parametrized modules share one generated class between
a module and its deepcopy, and removal deletes the property from that class, which breaks the *original* model
(its convs lose `.weight`). So we build a fresh module of the same class from the config with norm="none"
(identical module names, plain convs) and load the evaluated weights into it, strictly: a missing or extra tensor is
an error, never a silently random weight.

GroupNorm (seed-format models) is rewritten too. Exported as is (InstanceNormalization, or ReduceMean over the
whole group), ORT's CPU kernels sum up to millions of float32 values in one running accumulator, and the mean's
rounding error, amplified by the division by the standard deviation, cost ~50 dB of parity (measured on one
GroupNorm over [4, 74240]: 91 dB against float64, where PyTorch's cascaded sums reach 150 dB; the seed preset's
encoder as a whole: 64.5 dB, under the 80 dB export threshold). `MultiLevelGroupNorm` takes each mean in three
short stages (means of equal-sized groups compose exactly) and the variance of the already-centred values, using
only Reshape/ReduceMean/Sub/Mul/Sqrt/Div, which every EP supports.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn.utils import parametrize

from apucodec.contract.config import CodecConfig


def effective_state_dict(module: nn.Module) -> dict:
    """State dict with every parametrized tensor replaced by its current value under its plain name."""
    state = {k: v.detach().clone() for k, v in module.state_dict().items() if ".parametrizations." not in k
             and not k.startswith("parametrizations.")}
    for name, sub in module.named_modules():
        if parametrize.is_parametrized(sub):
            for tensor_name in sub.parametrizations:
                key = f"{name}.{tensor_name}" if name else tensor_name
                state[key] = getattr(sub, tensor_name).detach().clone()
    return state


def _divisor_near_sqrt(n: int) -> int:
    """The largest divisor of n not above sqrt(n) (so a length-n axis reshapes to two short axes)."""
    best = 1
    for d in range(1, int(n**0.5) + 1):
        if n % d == 0:
            best = d
    return best


class MultiLevelGroupNorm(nn.Module):
    """GroupNorm over [B, C, T]: means taken over T in two stages then over the group's channels, variance of the
    centred values. Shapes are static at export, so the reshape sizes become constants."""

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.groups = norm.num_groups
        self.eps = norm.eps
        channels = norm.num_channels
        weight = norm.weight if norm.affine else torch.ones(channels)
        bias = norm.bias if norm.affine else torch.zeros(channels)
        self.register_buffer("weight", weight.detach().clone().view(1, channels, 1))
        self.register_buffer("bias", bias.detach().clone().view(1, channels, 1))

    @staticmethod
    def _mean(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1, keepdim=True).mean(dim=-2, keepdim=True).mean(dim=-3, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames = (int(n) for n in x.shape)
        inner = _divisor_near_sqrt(frames)
        grouped = x.reshape(batch, self.groups, channels // self.groups, frames // inner, inner)
        centred = grouped - self._mean(grouped)
        variance = self._mean(centred * centred)
        normed = (centred / torch.sqrt(variance + self.eps)).reshape(batch, channels, frames)
        return normed * self.weight + self.bias


def replace_group_norms(module: nn.Module) -> int:
    """Swap every nn.GroupNorm inside `module` for a MultiLevelGroupNorm with the same parameters; how many."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.GroupNorm):
                setattr(parent, name, MultiLevelGroupNorm(child))
                count += 1
    return count


def fold_weight_norm(module: nn.Module, cfg: CodecConfig) -> tuple[nn.Module, int]:
    """A new module of `module`'s class (Encoder or Decoder) with plain convs carrying the same effective weights;
    and how many parametrized tensors were folded. `module` itself is left untouched and trainable."""
    folded_count = sum(len(sub.parametrizations) for sub in module.modules() if parametrize.is_parametrized(sub))
    plain_cfg = dataclasses.replace(cfg, norm="none") if cfg.norm == "weight" else cfg
    plain = type(module)(plain_cfg)
    plain.load_state_dict(effective_state_dict(module), strict=True)
    replace_group_norms(plain)
    plain.eval()
    for p in plain.parameters():
        p.requires_grad_(False)
    return plain, folded_count
