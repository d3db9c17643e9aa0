"""Checks on a checkpoint's key layout and GroupNorm shapes, each ending in one line that names the offending key.

Two layouts load: the original APU-Codec's bare state dict (one `quantizer.codebooks.N` tensor per codebook, plain
convolutions, GroupNorm) and this project's `{config, state_dict}` (codebooks stacked in `quantizer.codebooks` with
EMA statistics, weight-normed convolutions under `.parametrizations.`). A file holding keys of both was put together
by hand or by a broken converter; loading whichever half matches would silently drop the other, so it is refused.
A GroupNorm's group count must divide its channels (torch would fail later with a message that names no tensor).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError

SEED_CODEBOOK_PREFIX = "quantizer.codebooks."
PROJECT_ONLY = ("quantizer.codebooks", "quantizer.ema_sum", "quantizer.ema_count", "quantizer.initialized")


def _project_key(key: str) -> bool:
    return key in PROJECT_ONLY or ".parametrizations." in key


def check_seed_layout(state: dict[str, Any], path: Path) -> None:
    """A seed state dict must not also hold keys only this project's checkpoints have."""
    mixed = next((k for k in state if _project_key(k)), None)
    if mixed is not None:
        raise ApucodecError(f"{path}: mixes the original APU-Codec key layout (quantizer.codebooks.N) with this "
                            f"project's (key {mixed}); export one or the other")


def check_project_layout(state: dict[str, Any], path: Path) -> None:
    """A project state dict must not also hold the seed's per-codebook keys."""
    mixed = next((k for k in state if k.startswith(SEED_CODEBOOK_PREFIX)), None)
    if mixed is not None:
        raise ApucodecError(f"{path}: mixes this project's key layout with the original APU-Codec's (key {mixed} "
                            "in state_dict); export one or the other")


def check_norm_groups(state: dict[str, Any], groups: int, path: Path) -> None:
    """Every GroupNorm's channel count (its weight's length) must be a multiple of `groups`."""
    for key, value in state.items():
        if key.endswith(".norm.weight") and getattr(value, "ndim", 0) == 1 and value.shape[0] % groups:
            raise ApucodecError(f"{path}: {key}: GroupNorm with {groups} groups does not divide its "
                                f"{value.shape[0]} channels")
