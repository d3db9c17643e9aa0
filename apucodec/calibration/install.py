"""Installing quantized graphs into a model directory as one transaction: every file moved in and the manifest
written, or the directory left exactly as it was (previous files and manifest restored) with one line on failure.
Shared by the NPU (Quark) and CPU (onnxruntime.quantization) passes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from apucodec.errors import ApucodecError
from apucodec.model_dir import ModelDir


def install_graphs(model: ModelDir, moves: dict[str, tuple[Path, str]],
                   edit_manifest: Callable[[dict[str, Path]], None]) -> dict[str, Path]:
    """`moves`: role -> (staged file, file name in the model directory); `edit_manifest(targets)` records them."""
    targets = {role: model.path / name for role, (_, name) in moves.items()}
    backups: dict[str, Path] = {}
    manifest_before = {k: (dict(v) if isinstance(v, dict) else v) for k, v in model.manifest.items()}
    try:
        for role, target in targets.items():
            staged = moves[role][0]
            if target.exists():
                backups[role] = staged.parent / f"previous.{target.name}"
                os.replace(target, backups[role])
            os.replace(staged, target)
        edit_manifest(targets)
        model.save_manifest()
    except BaseException as exc:
        for role, target in targets.items():
            target.unlink(missing_ok=True)
            if role in backups:
                os.replace(backups[role], target)
        model.manifest.clear()
        model.manifest.update(manifest_before)
        if isinstance(exc, OSError):
            raise ApucodecError(f"{model.path}: cannot write the model directory ({exc.strerror or exc}); "
                                "it was left as it was") from None
        raise
    return targets
