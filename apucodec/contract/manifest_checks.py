"""The manifest's names and numbers, checked before any path is built or any value computed with.

A model directory is shared like any download, so its manifest is untrusted: a file name in it could be `../x.npy`
or `/etc/passwd` (with a matching sha256), and a config value could be 0 where the runtime divides by it. Each ends
here with one line naming the manifest (the files themselves are checked by apucodec/model/checks.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from apucodec.contract.config import MAX_CODEBOOKS
from apucodec.errors import ApucodecError

MAX_SAMPLE_RATE = 1_000_000


def check_entry_name(name: Any, role: str, manifest_path: Path) -> str:
    """A manifest `files[role].name` must be a plain file name inside the model directory."""
    if not isinstance(name, str) or not name:
        raise ApucodecError(f"{manifest_path}: files.{role}.name must be a file name, got {name!r}")
    if (name in (".", "..") or "/" in name or "\\" in name or "\0" in name or os.path.isabs(name)
            or Path(name).name != name):
        raise ApucodecError(f"{manifest_path}: files.{role}.name {name!r} is not a plain file name inside the model "
                            "directory (no paths, no '..')")
    return name


def _positive_int(value: Any, where: str, manifest_path: Path, upper: int | None = None, lower: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lower or (upper is not None and value > upper):
        bound = f"{lower}..{upper}" if upper is not None else f">= {lower}"
        raise ApucodecError(f"{manifest_path}: {where} must be an integer {bound}, got {value!r}")
    return value


def check_manifest(manifest: dict[str, Any], manifest_path: Path) -> None:
    """File names and the numbers the runtime computes with (rates, sizes, steps), each with a one-line refusal."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ApucodecError(f"{manifest_path}: 'files' must be a mapping of role to file entry")
    for role, entry in files.items():
        if not isinstance(entry, dict):
            raise ApucodecError(f"{manifest_path}: files.{role} must be a mapping")
        check_entry_name(entry.get("name"), role, manifest_path)
        if not isinstance(entry.get("sha256"), str):
            raise ApucodecError(f"{manifest_path}: files.{role} has no sha256")
        external = entry.get("external_data", [])
        if not isinstance(external, list):
            raise ApucodecError(f"{manifest_path}: files.{role}.external_data must be a list of file names")
        for name in external:
            check_entry_name(name, f"{role}.external_data", manifest_path)
    codec, streaming = manifest.get("codec"), manifest.get("streaming")
    if not isinstance(codec, dict) or not isinstance(streaming, dict):
        raise ApucodecError(f"{manifest_path}: 'codec' and 'streaming' must be mappings")
    _positive_int(codec.get("sample_rate", 44100), "codec.sample_rate", manifest_path, MAX_SAMPLE_RATE)
    _positive_int(codec.get("n_codebooks", 8), "codec.n_codebooks", manifest_path, MAX_CODEBOOKS)
    _positive_int(codec.get("codebook_size", 2048), "codec.codebook_size", manifest_path, 1 << 24, lower=2)
    _positive_int(codec.get("latent_dim", 128), "codec.latent_dim", manifest_path, 1 << 16)
    hop = streaming.get("hop")
    _positive_int(hop, "streaming.hop", manifest_path, 1 << 20)
    if codec.get("family", "apucodec") == "apucodec":  # other families check their own fields (contract.families)
        strides = codec.get("strides", [2, 4, 8, 8])
        if not isinstance(strides, list) or not strides:
            raise ApucodecError(f"{manifest_path}: codec.strides must be a list of integers, got {strides!r}")
        for stride in strides:
            _positive_int(stride, "codec.strides", manifest_path, 1 << 12)
        if hop != math.prod(strides):
            raise ApucodecError(f"{manifest_path}: streaming.hop {hop} is not the product of codec.strides {strides}")
    for stage in ("encoder", "decoder"):
        facts = streaming.get(stage)
        if not isinstance(facts, dict):
            raise ApucodecError(f"{manifest_path}: streaming.{stage} must be a mapping")
        _positive_int(facts.get("state_size"), f"streaming.{stage}.state_size", manifest_path, 1 << 30, lower=0)
        _positive_int(facts.get("delay_samples"), f"streaming.{stage}.delay_samples", manifest_path, 1 << 30,
                      lower=0)
    for role, entry in files.items():
        if "stage" in entry:
            _positive_int(entry.get("step_frames"), f"files.{role}.step_frames", manifest_path, 1 << 16)
            _positive_int(entry.get("horizon_frames"), f"files.{role}.horizon_frames", manifest_path, 1 << 20)
    if not isinstance(manifest.get("model_id"), str):
        raise ApucodecError(f"{manifest_path}: model_id must be a string")
