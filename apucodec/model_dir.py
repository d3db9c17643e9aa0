"""The model directory: the contract between export, quantization and the runtime.

    model/
      manifest.json      what every other file is, with sha256, role, I/O names and shapes, graph facts (ops,
                         GFLOP per window: optional, bench reads it); codec config; window geometry; export
                         parity; quantization; producer versions
      encoder.onnx       FP32, [1, 1, window_samples] -> [1, latent, window_frames]
      encoder.int8.onnx  optional, written by quantize-encoder
      codebooks.npy      [n_codebooks, codebook_size, latent] (float32, or float16 widened at load)
      decoder.onnx       FP32, [1, latent, window_frames] -> [1, 1, window_samples]

Every stage reads the directory through `load_model_dir`, which refuses unknown format versions and any file whose
bytes do not match the recorded sha256, naming the file — a silently swapped graph would otherwise produce
plausible-sounding garbage. This module is torch-free: the runtime imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.codec.config import CodecConfig
from apucodec.errors import ApucodecError
from apucodec.model_checks import check_manifest, check_model_files, load_codebooks

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "apucodec-model"
FORMAT_VERSION = 1
REQUIRED_ROLES = ("encoder", "codebooks", "decoder")
DEFAULT_DIR_NAME = "apucodec-model"
ENV_VAR = "APUCODEC_MODEL"
# A small trained model shipped inside the package, so `apucodec run in.wav out.wav` works out of the box.
BUNDLED_DIR = Path(__file__).resolve().parent / "models" / "default"


@dataclass(frozen=True)
class WindowGeometry:
    """Static window of the NPU/GPU graphs: `context` frames, `chunk` frames kept, `context` frames.

    Both graphs see `window_frames` frames (the encoder as window_frames * hop samples). Only the chunk's frames
    (encoder) or samples (decoder) are kept; context on both sides must cover the receptive field so the kept part
    equals what the whole-file network computes.
    """

    hop: int
    window_frames: int
    context_frames: int

    def __post_init__(self) -> None:
        if self.chunk_frames <= 0:
            raise ValueError(f"window of {self.window_frames} frames leaves no chunk after 2 x {self.context_frames}"
                             " frames of context")

    @property
    def chunk_frames(self) -> int:
        return self.window_frames - 2 * self.context_frames

    @property
    def window_samples(self) -> int:
        return self.window_frames * self.hop

    @property
    def chunk_samples(self) -> int:
        return self.chunk_frames * self.hop

    @property
    def context_samples(self) -> int:
        return self.context_frames * self.hop

    def to_dict(self) -> dict[str, int]:
        return {"hop": self.hop, "window_frames": self.window_frames, "context_frames": self.context_frames,
                "chunk_frames": self.chunk_frames, "window_samples": self.window_samples}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowGeometry:
        return cls(hop=int(data["hop"]), window_frames=int(data["window_frames"]),
                   context_frames=int(data["context_frames"]))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path, role: str, **fields: Any) -> dict[str, Any]:
    """A manifest `files[role]` entry for a file already written into the directory."""
    return {"name": path.name, "role": role, "sha256": sha256_file(path), "bytes": path.stat().st_size, **fields}


def model_id(files: dict[str, dict[str, Any]]) -> str:
    """Identity of the model's weights: a hash over the FP32 graphs' and codebooks' hashes.

    Quantizing the encoder does not change it, so .apc files stay decodable after quantize-encoder.
    """
    digest = hashlib.sha256()
    for role in REQUIRED_ROLES:
        digest.update(files[role]["sha256"].encode())
    return digest.hexdigest()[:16]


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a manifest is as readable as the model files beside it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class ModelDir:
    path: Path
    manifest: dict[str, Any]

    @property
    def config(self) -> CodecConfig:
        return CodecConfig.from_dict(self.manifest["codec"])

    @property
    def geometry(self) -> WindowGeometry:
        return WindowGeometry.from_dict(self.manifest["window"])

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.manifest["files"]

    def has(self, role: str) -> bool:
        return role in self.files

    def path_of(self, role: str) -> Path:
        if role not in self.files:
            raise ApucodecError(f"{self.path}: the model directory has no {role} file")
        return self.path / self.files[role]["name"]

    def codebooks(self) -> np.ndarray:
        """[n_codebooks, codebook_size, latent] float32 (stored float16 models are widened here)."""
        cfg = self.config  # h16: no pickles, header and shape checked before reading (apucodec.model_checks)
        return load_codebooks(self.path_of("codebooks"), (cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim))

    def verify(self, roles: tuple[str, ...] | None = None) -> None:
        """Check each file's sha256 against the manifest; raise naming the first file that differs."""
        for role, entry in self.files.items():
            if roles is not None and role not in roles:
                continue
            path = self.path / entry["name"]
            if not path.is_file():
                raise ApucodecError(f"{path}: missing from the model directory (manifest lists it as {role})")
            if sha256_file(path) != entry["sha256"]:
                raise ApucodecError(f"{path}: sha256 does not match the manifest (file changed or corrupted)")

    def save_manifest(self) -> None:
        write_json_atomic(self.path / MANIFEST_NAME, self.manifest)

    @property
    def is_bundled(self) -> bool:
        return self.path.resolve() == BUNDLED_DIR

    @property
    def label(self) -> str:
        """How the summary line names this model."""
        if self.is_bundled:
            return f"bundled default model (model {self.model_id}; see apucodec/models/default/MODEL.md)"
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
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApucodecError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ApucodecError(f"{manifest_path}: not an apucodec manifest (format is not {FORMAT_NAME!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ApucodecError(f"{manifest_path}: format version {version!r} is not supported (this apucodec reads "
                            f"version {FORMAT_VERSION}); re-export the model with this apucodec")
    check_manifest(manifest, manifest_path)  # h16: plain file names, sane values (apucodec.model_checks)
    try:
        files = manifest["files"]
        missing = [r for r in REQUIRED_ROLES if r not in files]
        if missing:
            raise ApucodecError(f"{manifest_path}: lists no {', '.join(missing)} file")
        model = ModelDir(path, manifest)
        model.config  # noqa: B018 - parse now so a bad config fails here, with the file named
        model.geometry  # noqa: B018
        manifest["model_id"]  # noqa: B018
    except ApucodecError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ApucodecError(f"{manifest_path}: malformed manifest ({type(exc).__name__}: {exc})") from None
    if verify:
        model.verify()
        cfg = model.config  # h16: graphs without external data, codebooks loadable (apucodec.model_checks)
        check_model_files(path, model.files, (cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim))
    return model


def default_model_path(option: str | Path | None, allow_bundled: bool = True) -> Path:
    """--model, else $APUCODEC_MODEL, else ./apucodec-model, else (when allowed) the bundled default model.

    Commands that write into the model directory (quantize-encoder) pass allow_bundled=False: the bundled copy lives
    in site-packages and must never be modified in place.
    """
    if option:
        return Path(option)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    local = Path(DEFAULT_DIR_NAME)
    if allow_bundled and not local.exists() and (BUNDLED_DIR / MANIFEST_NAME).is_file():
        return BUNDLED_DIR
    return local
