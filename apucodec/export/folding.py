"""Turn a training module into the plain network that gets exported: weight norm folded, eval mode, no grads.

Weight norm is a reparametrisation (w = g * v / ||v||) that only matters to the optimiser; left in, it exports as
a norm + div + mul subgraph in front of every conv, recomputed on every inference and awkward for the NPU's
quantizer. Folding writes the effective weight into a plain Conv.

Why not `remove_parametrizations` on a deep copy: torch's parametrized modules share one generated class between
a module and its deepcopy, and removal deletes the property from that class, which breaks the *original* model
(its convs lose `.weight`). So we build a fresh module of the same class from the config with norm="none"
(identical module names, plain convs) and load the evaluated weights into it, strictly: a missing or extra tensor is
an error, never a silently random weight.
"""

from __future__ import annotations

import dataclasses

from torch import nn
from torch.nn.utils import parametrize

from apucodec.codec.config import CodecConfig


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


def fold_weight_norm(module: nn.Module, cfg: CodecConfig) -> tuple[nn.Module, int]:
    """A new module of `module`'s class (Encoder or Decoder) with plain convs carrying the same effective weights;
    and how many parametrized tensors were folded. `module` itself is left untouched and trainable."""
    folded_count = sum(len(sub.parametrizations) for sub in module.modules() if parametrize.is_parametrized(sub))
    plain_cfg = dataclasses.replace(cfg, norm="none") if cfg.norm == "weight" else cfg
    plain = type(module)(plain_cfg)
    plain.load_state_dict(effective_state_dict(module), strict=True)
    plain.eval()
    for p in plain.parameters():
        p.requires_grad_(False)
    return plain, folded_count
