"""DAC's checkpoint format: `{"state_dict": ..., "metadata": {"kwargs": {...DAC(...) arguments}}}`, what
`DAC.save(path, package=False)` writes and the official releases ship. Read (by the caller) with
`weights_only=True`; recognised by its `metadata.kwargs` and DAC's key names."""

from __future__ import annotations

from typing import Any

import torch

from apucodec.codec.dac.model import DacModel
from apucodec.contract.dac_config import DacConfig


def is_dac_checkpoint(data: dict[str, Any]) -> bool:
    metadata = data.get("metadata")
    state = data.get("state_dict")
    return (isinstance(metadata, dict) and isinstance(metadata.get("kwargs"), dict) and isinstance(state, dict)
            and any(str(k).startswith("quantizer.quantizers.") for k in state))


def dac_model_from_checkpoint(data: dict[str, Any]) -> DacModel:
    """Config from `metadata.kwargs`, weights loaded strictly (a missing or extra tensor is an error)."""
    config = DacConfig.from_dac_kwargs(dict(data["metadata"]["kwargs"]))
    model = DacModel(config)
    state = {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
             for k, v in data["state_dict"].items()}
    model.load_state_dict(state, strict=True)
    return model.eval()
