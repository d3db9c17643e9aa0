"""The `encodec` package's state dict (the form `encodec_24khz-*.th` ships in) -> an `EncodecNet`.

Recognised by its key names (`encoder.model.0.conv.conv.weight_g`, `quantizer.vq.layers.N._codebook.embed`); the
config is read off the tensor shapes (widths, ratios, kernel sizes, LSTM layers, RVQ shape); what shapes cannot tell
(causal, reflect padding, dilation base) is the 24 kHz model's. Weight norm (w = g * v / ||v||, norm over all but
dim 0, as torch.nn.utils.weight_norm computes it) is folded at load: the step graphs want plain weights, and the
whole-file reference then runs the very weights the graphs run.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from apucodec.codec.encodec.model import EncodecNet
from apucodec.contract.encodec_config import EncodecConfig

CODEBOOK_KEY = re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\.embed$")
_WRAPPERS = re.compile(r"\.(conv\.conv|convtr\.convtr)\.")
_TOP = re.compile(r"^(encoder|decoder)\.model\.(\d+)\.(conv\.conv|convtr\.convtr|block|shortcut|lstm)\.")


def is_encodec_state_dict(state: dict[str, Any]) -> bool:
    return any(CODEBOOK_KEY.match(k) for k in state) and any(k.startswith("encoder.model.0.conv.conv.") for k in state)


def _weight(state: dict[str, Any], prefix: str) -> torch.Tensor:
    """The (effective) weight under `prefix` (e.g. 'encoder.model.0.conv.conv'), weight norm folded."""
    for g_key, v_key in (("weight_g", "weight_v"), ("parametrizations.weight.original0",
                                                      "parametrizations.weight.original1")):
        if f"{prefix}.{g_key}" in state:
            g, v = state[f"{prefix}.{g_key}"].double(), state[f"{prefix}.{v_key}"].double()
            norm = v.reshape(v.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
            return (g * v / norm).float()
    return state[f"{prefix}.weight"].float()


def _layers(state: dict[str, Any], net: str) -> dict[int, str]:
    found: dict[int, str] = {}
    for key in state:
        match = _TOP.match(key)
        if match and match.group(1) == net:
            found[int(match.group(2))] = "block" if match.group(3) == "shortcut" else match.group(3)
    return dict(sorted(found.items()))


def config_from_state_dict(state: dict[str, Any]) -> EncodecConfig:
    enc = _layers(state, "encoder")
    convs = [i for i, kind in enc.items() if kind == "conv.conv"]
    first, last = _weight(state, f"encoder.model.{convs[0]}.conv.conv"), \
        _weight(state, f"encoder.model.{convs[-1]}.conv.conv")
    downs = [_weight(state, f"encoder.model.{i}.conv.conv") for i in convs[1:-1]]
    blocks = [i for i, kind in enc.items() if kind == "block"]
    n_res = sum(1 for i in blocks if i < convs[1]) if len(convs) > 2 else len(blocks)
    lstm = sum(1 for k in state if re.match(r"^encoder\.model\.\d+\.lstm\.weight_ih_l\d+$", k))
    codebooks = sorted((int(CODEBOOK_KEY.match(k).group(1)), k) for k in state if CODEBOOK_KEY.match(k))
    size, dim = state[codebooks[0][1]].shape
    residual = _weight(state, f"encoder.model.{blocks[0]}.block.1.conv.conv") if blocks else None
    norm = "weight_norm" if any(k.endswith(".weight_g") for k in state) else "none"
    return EncodecConfig(
        channels=int(first.shape[1]), latent_dim=int(dim), n_filters=int(first.shape[0]),
        ratios=tuple(int(w.shape[2]) // 2 for w in reversed(downs)), n_residual_layers=n_res,
        kernel_size=int(first.shape[2]), last_kernel_size=int(last.shape[2]),
        residual_kernel_size=int(residual.shape[2]) if residual is not None else 3,
        compress=int(first.shape[0] // residual.shape[0]) if residual is not None else 2,
        true_skip=not any(".shortcut." in k for k in state), lstm=lstm, norm=norm,
        n_codebooks=len(codebooks), codebook_size=int(size))


def to_model_state(state: dict[str, Any], model: EncodecNet) -> dict[str, torch.Tensor]:
    """Package keys -> EncodecNet keys: wrappers dropped, weight norm folded, codebooks stacked."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("quantizer."):
            continue
        renamed = _WRAPPERS.sub(".", key)
        if renamed.endswith((".weight_g", ".weight_v", ".original0", ".original1")):
            prefix = key.rsplit(".", 1)[0].removesuffix(".parametrizations.weight")
            out[_WRAPPERS.sub(".", prefix + ".") + "weight"] = _weight(state, prefix)
        else:
            out[renamed] = value.float()
    n = model.config.n_codebooks
    out["quantizer.codebooks"] = torch.stack(
        [state[f"quantizer.vq.layers.{i}._codebook.embed"].float() for i in range(n)])
    return out


def load_encodec_state_dict(state: dict[str, Any]) -> EncodecNet:
    """A bare `encodec` state dict -> EncodecNet in eval mode (KeyError/RuntimeError on a mismatch)."""
    config = config_from_state_dict(state)
    model = EncodecNet(config)
    model.load_state_dict(to_model_state(state, model), strict=True)
    model.weight_norm_folded = sum(1 for k in state if k.endswith((".weight_g", ".original0")))
    model.eval()
    return model
