"""The model directory: the contract between export, quantization and the runtime.

    model/
      manifest.json        what every other file is, with sha256, role, I/O names and shapes, graph facts (ops,
                           GFLOP per step: optional, bench reads it); codec config; streaming (each stage's delay
                           and state size, the algorithmic latency per step size); export parity; quantization;
                           producer versions
      encoder.s4.onnx      FP32 step graph: audio [1, 1, 4*hop] + state + bounds -> latent [1, D, 4] + next state
      encoder.s64.onnx    the same network at the offline step (same state layout)
      encoder.s64.npu-int8.onnx   optional, written by quantize-encoder (and *.cpu-int8.onnx by quantize --target cpu)
      codebooks.npy        [n_codebooks, codebook_size, latent] (float32, or float16 widened at load)
      decoder.s4.onnx, decoder.s64.onnx   latent [1, D, S] + state + bounds -> audio [1, 1, S*hop] + next state

Every stage reads the directory through `load_model_dir`, which refuses unknown format versions and any file whose
bytes do not match the recorded sha256, naming the file — a silently swapped graph would otherwise produce
plausible-sounding garbage. The manifest is read and written by apucodec/contract/manifest.py (typed, read by
attribute: `model.files[role].name`, `model.manifest.streaming.encoder.delay_samples`). This module is torch-free
(the runtime imports it) and imports nothing from apucodec.codec, export or calibration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.contract.config import CodecConfig
from apucodec.contract.families import codebook_shape
from apucodec.contract.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    WEIGHTS_FORMAT,
    FileEntry,
    Manifest,
    StageStreaming,
    read_manifest,
    write_manifest,
)
from apucodec.contract.steps import STAGES
from apucodec.errors import ApucodecError
from apucodec.model.checks import check_model_files, load_codebooks
from apucodec.model.verified_hashes import matches_sha256, sha256_file

__all__ = ["BUNDLED_DIR", "DEFAULT_DIR_NAME", "ENV_VAR", "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST_NAME", "ModelDir",
           "file_entry", "load_model_dir", "model_id", "sha256_file"]

DEFAULT_DIR_NAME = "apucodec-model"
ENV_VAR = "APUCODEC_MODEL"
# A small trained model shipped inside the package, so `apucodec run in.wav out.wav` works out of the box.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models" / "default"  # apucodec/models/default


def file_entry(path: Path, role: str, **fields: Any) -> FileEntry:
    """A manifest `files[role]` entry for a file already written into the directory (fields typed or JSON)."""
    return FileEntry.from_dict({"name": path.name, "role": role, "sha256": sha256_file(path),
                                "bytes": path.stat().st_size, **fields})


def model_id(files: Mapping[str, FileEntry]) -> str:
    """Identity of the model's weights: a hash over the FP32 step graphs' and the codebooks' hashes.

    Quantizing a graph does not change it, so .apc files stay decodable after quantization. `files` holds
    FileEntry records or their JSON (both read as mappings here).
    """
    digest = hashlib.sha256()
    roles = sorted(r for r, e in files.items() if e.is_step_graph and e.graph_precision == "fp32")
    # Graphs that keep their weights in a shared file (export/shared_weights.py) are identified by it too; a
    # model without one keeps the id it always had. DAC's projections are part of what the codes mean.
    weights = sorted(r for r, e in files.items() if e.format == WEIGHTS_FORMAT and e.graph_precision == "fp32")
    projections = [r for r in ("rvq_projections",) if r in files]
    for role in [*roles, "codebooks", *projections, *weights]:
        digest.update(files[role].sha256.encode())
    return digest.hexdigest()[:16]


@dataclass
class ModelDir:
    """An opened model directory: its path and its typed manifest (apucodec/contract/manifest.py)."""

    path: Path
    manifest: Manifest

    @property
    def config(self) -> CodecConfig:
        return self.manifest.config

    @property
    def hop(self) -> int:
        return self.config.hop_length

    def streaming(self, stage: str) -> StageStreaming:
        """The stage's delay and state size (shared by all its step graphs)."""
        return self.manifest.streaming.stage(stage)

    def step_graphs(self, stage: str | None = None) -> list[FileEntry]:
        """Every step graph file (of one stage), smallest step first."""
        return [g for g in self.manifest.step_graphs if stage is None or g.stage == stage]

    def step_sizes(self, stage: str) -> list[int]:
        return sorted({g.step_frames for g in self.step_graphs(stage) if g.graph_precision == "fp32"})

    def step_graph(self, stage: str, step_frames: int, precision: str = "fp32") -> FileEntry | None:
        return next((g for g in self.step_graphs(stage)
                     if g.step_frames == step_frames and g.graph_precision == precision), None)

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    @property
    def files(self) -> dict[str, FileEntry]:
        return self.manifest.files

    def has(self, role: str) -> bool:
        return role in self.files

    def path_of(self, role: str) -> Path:
        if role not in self.files:
            raise ApucodecError(f"{self.path}: the model directory has no {role} file")
        return self.path / self.files[role].name

    def content_sha256(self, role: str) -> str:
        """What a graph computes with, as one hash: its file's sha256, and those of the weights files it reads.

        Two exports of one config write byte-identical graph files when their weights live in a weights file, so
        anything keyed by a graph's content (ORT's optimized-graph cache) keys by this instead."""
        entry = self.files[role]
        external = entry.external_data or []
        if not external:
            return entry.sha256
        by_name = {e.name: e.sha256 for e in self.files.values()}
        parts = [entry.sha256, *(f"{name}:{by_name.get(name, '?')}" for name in external)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def codebooks(self) -> np.ndarray:
        """[n_codebooks, codebook_size, latent] float32 (stored float16 models are widened here)."""
        # h16: no pickles, header and shape checked before reading (apucodec.model.checks)
        return load_codebooks(self.path_of("codebooks"), codebook_shape(self.config))

    def verify(self, roles: tuple[str, ...] | None = None) -> None:
        """Check each file's sha256 against the manifest; raise naming the first file that differs. (A file unchanged
        since it last matched is not hashed again: apucodec/model/verified_hashes.py.)"""
        for role, entry in self.files.items():
            if roles is not None and role not in roles:
                continue
            path = self.path / entry.name
            if not path.is_file():
                raise ApucodecError(f"{path}: missing from the model directory (manifest lists it as {role})")
            try:
                same = matches_sha256(path, entry.sha256)
            except OSError as exc:  # unreadable (permissions, EIO): one line, not a traceback
                raise ApucodecError(f"{path}: cannot read it ({exc.strerror or exc})") from None
            if not same:
                raise ApucodecError(f"{path}: sha256 does not match the manifest (file changed or corrupted)")

    def save_manifest(self) -> None:
        write_manifest(self.path / MANIFEST_NAME, self.manifest)

    @property
    def is_bundled(self) -> bool:
        return self.path.resolve() == BUNDLED_DIR

    @property
    def label(self) -> str:
        """How the summary line names this model."""
        if self.is_bundled:
            return f"bundled default model (model {self.model_id}; see apucodec/models/default/MODEL.md)"
        if not self.path.is_absolute() and self.path == Path(DEFAULT_DIR_NAME):
            # picked up from wherever the user happened to be: say so, and where that was
            return f"./{DEFAULT_DIR_NAME} found in the current directory {Path.cwd()} (model {self.model_id})"
        return f"{self.path} (model {self.model_id})"


def load_model_dir(path: str | Path, verify: bool = True) -> ModelDir:
    """Open and validate a model directory (format, required files, hashes)."""
    path = Path(path)
    if not path.exists():
        raise ApucodecError(f"{path}: no such model directory (run 'apucodec export' first, or pass --model)")
    if not path.is_dir():
        raise ApucodecError(f"{path}: is not a model directory")
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ApucodecError(f"{manifest_path}: missing; {path} is not an apucodec model directory")
    model = ModelDir(path, read_manifest(manifest_path))
    missing = [stage for stage in STAGES if not model.step_sizes(stage)] + \
        ([] if model.has("codebooks") else ["codebooks"])
    if missing:
        raise ApucodecError(f"{manifest_path}: lists no {', '.join(missing)} file")
    for stage in STAGES:
        facts = model.streaming(stage)
        for g in model.step_graphs(stage):
            if g.state_size != facts.state_size or g.step_frames < 1 or g.horizon_frames < g.step_frames:
                raise ApucodecError(f"{manifest_path}: step graph {g.role} disagrees with the {stage}'s "
                                    f"streaming facts (state {g.state_size} vs {facts.state_size})")
    if verify:
        model.verify()
        cfg = model.config  # h16: graphs without external data, codebooks loadable (apucodec.model.checks)
        check_model_files(path, model.files, codebook_shape(cfg), cfg.latent_dim)
    return model
