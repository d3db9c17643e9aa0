"""Checkpoint save/load: our own `{config, state_dict, step, versions, ...}` files and the original APU-Codec's
bare state dicts.

Checkpoints are untrusted input (people share them), so they are always read with `weights_only=True`: a pickle
that tries to build arbitrary objects is refused instead of executed. The seed format is recognised by its key
names and loaded into a `norm="group"` model whose module names match it key for key.
"""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from apucodec import __version__
from apucodec.codec.dac.checkpoint import is_dac_checkpoint
from apucodec.codec.dac.model import DacModel
from apucodec.codec.model import APUCodec
from apucodec.codec.seed_checks import (
    SEED_CODEBOOK_PREFIX,
    check_norm_groups,
    check_project_layout,
    check_seed_layout,
)
from apucodec.contract.config import CodecConfig
from apucodec.contract.dac_config import DacConfig
from apucodec.errors import ApucodecError, first_line, require_file


@dataclass
class LoadedCheckpoint:
    model: APUCodec | DacModel
    step: int
    source_format: str  # "apucodec", "seed" or "dac"
    extra: dict[str, Any] = field(default_factory=dict)  # optimizer/scheduler state etc. for resuming


def versions() -> dict[str, str]:
    return {"apucodec": __version__, "torch": str(torch.__version__), "python": platform.python_version()}


def save_checkpoint(path: str | Path, model: APUCodec, step: int, **extra: Any) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a truncated checkpoint."""
    path = Path(path)
    payload = {"config": model.config.to_dict(), "state_dict": model.state_dict(), "step": step,
               "versions": versions(), **extra}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ApucodecError(f"{path}: cannot write checkpoint ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ApucodecError(f"{path}: cannot write checkpoint ({exc.strerror})") from None
        raise


def _read(path: Path) -> Any:
    require_file(path, "a checkpoint file", missing="no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for bad files
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            raise ApucodecError(
                f"{path}: refused: the file contains pickled objects other than tensors "
                "(not loadable with weights_only=True)"
            ) from None
        raise ApucodecError(f"{path}: not a PyTorch checkpoint ({first_line(exc)})") from None


def is_seed_state_dict(state: dict[str, Any]) -> bool:
    return any(k.startswith(SEED_CODEBOOK_PREFIX) for k in state) and any(
        k.startswith("encoder.blocks.") for k in state
    )


def config_from_seed_state_dict(state: dict[str, torch.Tensor]) -> CodecConfig:
    """Infer channel widths and RVQ shape from a seed state dict's tensor shapes."""
    n_blocks = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks."))
    stem = state["encoder.input_conv.weight"].shape[0]
    widths = [stem] + [state[f"encoder.blocks.{i}.downsample.weight"].shape[0] for i in range(n_blocks)]
    strides = [state[f"encoder.blocks.{i}.downsample.weight"].shape[2] // 2 for i in range(n_blocks)]
    codebooks = sorted(k for k in state if k.startswith(SEED_CODEBOOK_PREFIX))
    size, dim = state[codebooks[0]].shape
    return CodecConfig(channels=tuple(widths), strides=tuple(strides), latent_dim=dim, n_codebooks=len(codebooks),
                       codebook_size=size, norm="group", activation="gelu")


def seed_to_state_dict(state: dict[str, torch.Tensor], model: APUCodec) -> dict[str, torch.Tensor]:
    """Map seed keys onto ours: identical module names, codebooks stacked into one buffer."""
    converted = {k: v for k, v in state.items() if not k.startswith(SEED_CODEBOOK_PREFIX)}
    n = model.config.n_codebooks
    codebooks = torch.stack([state[f"{SEED_CODEBOOK_PREFIX}{i}"] for i in range(n)]).float()
    converted["quantizer.codebooks"] = codebooks
    converted["quantizer.ema_sum"] = codebooks.clone()
    converted["quantizer.ema_count"] = torch.ones(codebooks.shape[:2])
    converted["quantizer.initialized"] = torch.tensor(True)
    return converted


def check_finite_state(state: dict[str, Any], path: Path) -> None:
    """Refuse weights holding NaN/Inf by name: otherwise export fails later with an unrelated-looking reason."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ApucodecError(f"{path}: holds NaN or infinite values (first in {key}); the training that wrote it "
                                "diverged or the file is corrupted")


MAX_BLOCKS = 32  # encoder/decoder blocks (len(strides)); the presets use 4-6


def check_against_tensors(config: CodecConfig, state: dict[str, Any], path: Path) -> None:
    """Refuse a config that does not describe the tensors beside it, naming the key and both shapes.

    The config is a few numbers an attacker controls; the tensors are what the file actually holds. A config asking
    for 1,048,576 channels used to build (and allocate) that model before load_state_dict noticed, and the OOM
    killer ended it. Here the model is built on PyTorch's meta device (shapes, no storage) and every parameter's
    shape is compared with the checkpoint's tensor; only a config that matches is built for real, so the memory it
    takes is bounded by the file's own size.
    """
    if len(config.strides) > MAX_BLOCKS or len(config.dilations) > MAX_BLOCKS:
        raise ApucodecError(f"{path}: config asks for {len(config.strides)} blocks of {len(config.dilations)} "
                            f"residual units; at most {MAX_BLOCKS} are supported")
    with torch.device("meta"):
        skeleton = APUCodec(config)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing, extra = sorted(expected.keys() - got.keys()), sorted(set(state) - expected.keys())
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ApucodecError(f"{path}: checkpoint lacks {missing[0]} (shape {list(expected[missing[0]])}), which its "
                            f"config asks for{more}")
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise ApucodecError(f"{path}: checkpoint holds {extra[0]}, which its config's model does not have{more}")
    for key, shape in expected.items():
        if got[key] != shape:
            raise ApucodecError(f"{path}: {key} has shape {list(got[key])} in the checkpoint, but its config asks for "
                                f"{list(shape)}")


def checkpoint_family(path: str | Path, family: str | None = None) -> str:
    """The codec family a checkpoint holds: `family` if given (the user's override, checked against the known
    ones), else recognised from its keys (an `encodec` package state dict, or the project's own formats)."""
    from apucodec.codec.encodec.checkpoint import is_encodec_state_dict
    from apucodec.contract.families import family_names

    if family is not None:
        if family not in family_names():
            raise ApucodecError(f"--family {family!r} is not a codec family this apucodec knows "
                                f"({', '.join(family_names())})")
        return family
    data = _read(Path(path))
    return "encodec" if isinstance(data, dict) and is_encodec_state_dict(data) else "apucodec"


def load_encodec_checkpoint(path: str | Path) -> Any:
    """An `encodec` package state dict -> EncodecNet (eval), with one-line errors for files that are not one."""
    from apucodec.codec.encodec.checkpoint import is_encodec_state_dict, load_encodec_state_dict

    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict) or not is_encodec_state_dict(data):
        found = ", ".join(list(data)[:4]) if isinstance(data, dict) else type(data).__name__
        raise ApucodecError(f"{path}: not an encodec state dict (no encoder.model.0.conv.conv.* and "
                            f"quantizer.vq.layers.N._codebook.embed keys; found {found})")
    check_finite_state(data, path)
    try:
        return load_encodec_state_dict(data)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError) as exc:
        raise ApucodecError(f"{path}: checkpoint does not match the EnCodec model ({first_line(exc)[:300]})") \
            from None


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Load either checkpoint format into an APUCodec in eval mode, with one-line errors for bad files."""
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise ApucodecError(f"{path}: expected a dict checkpoint, found {type(data).__name__}")
    try:
        if "state_dict" in data and "config" in data:
            config = CodecConfig.from_dict(dict(data["config"]))
            if not isinstance(data["state_dict"], dict):
                raise ApucodecError(f"{path}: state_dict is a {type(data['state_dict']).__name__}, not a dict")
            check_project_layout(data["state_dict"], path)
            if config.norm == "group":
                check_norm_groups(data["state_dict"], config.norm_groups, path)
            check_against_tensors(config, data["state_dict"], path)  # before a byte of the model is allocated
            model = APUCodec(config)
            state, fmt = data["state_dict"], "apucodec"
            extra = {k: v for k, v in data.items() if k not in ("config", "state_dict", "step")}
            step = int(data.get("step", 0))
        elif is_dac_checkpoint(data):  # DAC.save(path, package=False): {state_dict, metadata: {kwargs}}
            model = DacModel(DacConfig.from_dac_kwargs(dict(data["metadata"]["kwargs"])))
            state, fmt, extra, step = data["state_dict"], "dac", {}, 0
        elif is_seed_state_dict(data):
            check_seed_layout(data, path)
            config = config_from_seed_state_dict(data)
            model = APUCodec(config)
            state, fmt, extra, step = seed_to_state_dict(data, model), "seed", {}, 0
        else:
            keys = ", ".join(list(data)[:4])
            raise ApucodecError(
                f"{path}: not an APU-Codec checkpoint (no config/state_dict, seed keys or DAC "
                f"metadata.kwargs; found {keys})"
            )
        check_finite_state(state, path)
        model.load_state_dict(state, strict=True)
    except ApucodecError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise ApucodecError(f"{path}: checkpoint does not match the APU-Codec model ({first_line(exc)[:300]})") \
            from None
    model.eval()
    return LoadedCheckpoint(model=model, step=step, source_format=fmt, extra=extra)
