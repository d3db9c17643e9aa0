"""What a model directory may contain, checked before anything in it is loaded or run.

A model directory is shared like any download, so its manifest is untrusted: a file name in it could be `../x.npy`
or `/etc/passwd` (with a matching sha256), an ONNX graph could pull its weights from an external-data file the
manifest's hashes never cover, `codebooks.npy` could be a pickle, a text file, or a header that promises 4 TiB, and a
config value could be 0 where the runtime divides by it. Each of these ends here with one line naming the file.

`load_model_dir` calls `check_manifest` (names and values, before any path is built) and `check_model_files`
(graphs and codebooks, after the hashes), so `run`, `encode`, `decode`, `bench` and `doctor --model` all refuse the
same things. Torch-free and onnx-free: ONNX files are walked with a small protobuf reader.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.errors import ApucodecError

MAX_SAMPLE_RATE = 1_000_000
MAX_CODEBOOKS = 64  # the .apc header's limit
CODEBOOK_DTYPES = (np.dtype("float32"), np.dtype("float16"))


# ---- manifest ------------------------------------------------------------------------------------------------------

def check_file_name(name: Any, role: str, manifest_path: Path) -> str:
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
        check_file_name(entry.get("name"), role, manifest_path)
        if not isinstance(entry.get("sha256"), str):
            raise ApucodecError(f"{manifest_path}: files.{role} has no sha256")
    codec, streaming = manifest.get("codec"), manifest.get("streaming")
    if not isinstance(codec, dict) or not isinstance(streaming, dict):
        raise ApucodecError(f"{manifest_path}: 'codec' and 'streaming' must be mappings")
    _positive_int(codec.get("sample_rate", 44100), "codec.sample_rate", manifest_path, MAX_SAMPLE_RATE)
    _positive_int(codec.get("n_codebooks", 8), "codec.n_codebooks", manifest_path, MAX_CODEBOOKS)
    _positive_int(codec.get("codebook_size", 2048), "codec.codebook_size", manifest_path, 1 << 24, lower=2)
    _positive_int(codec.get("latent_dim", 128), "codec.latent_dim", manifest_path, 1 << 16)
    strides = codec.get("strides", [2, 4, 8, 8])
    if not isinstance(strides, list) or not strides:
        raise ApucodecError(f"{manifest_path}: codec.strides must be a list of integers, got {strides!r}")
    for stride in strides:
        _positive_int(stride, "codec.strides", manifest_path, 1 << 12)
    hop = streaming.get("hop")
    _positive_int(hop, "streaming.hop", manifest_path, 1 << 20)
    if hop != int(np.prod(strides)):
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


# ---- files ---------------------------------------------------------------------------------------------------------

def check_inside(path: Path, model_dir: Path) -> None:
    """Refuse a directory entry that is a symlink leading out of the model directory."""
    real = Path(os.path.realpath(path))
    if real.parent != Path(os.path.realpath(model_dir)):
        raise ApucodecError(f"{path}: points outside the model directory ({real}); model files must live inside it")


def load_codebooks(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """codebooks.npy as float32 [n, size, dim]: no pickles, no object arrays, the header checked before reading."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # pickled data, or a header numpy cannot parse
        text = str(exc).splitlines()[0] if str(exc) else "unreadable"
        if "pickle" in text.lower() or "object" in text.lower():
            text = "holds pickled Python objects, which are refused"
        raise ApucodecError(f"{path}: not a NumPy .npy array ({text})") from None
    except (OSError, EOFError, TypeError) as exc:
        raise ApucodecError(f"{path}: not a NumPy .npy array ({str(exc).splitlines()[0] if str(exc) else exc})") \
            from None
    if not isinstance(array, np.ndarray):
        raise ApucodecError(f"{path}: not a single .npy array")
    if array.dtype not in CODEBOOK_DTYPES:
        raise ApucodecError(f"{path}: codebooks must be float32 or float16, found {array.dtype}")
    if tuple(array.shape) != tuple(shape):
        raise ApucodecError(f"{path}: shape {list(array.shape)} does not match the manifest's codec {list(shape)}")
    out = np.array(array, dtype=np.float32)
    del array
    if not np.all(np.isfinite(out)):
        raise ApucodecError(f"{path}: codebooks hold NaN or infinite values")
    return out


def check_model_files(model_dir: Path, files: dict[str, dict[str, Any]], codebook_shape: tuple[int, int, int]) -> None:
    """Every listed file inside the directory; graphs without external data; codebooks loadable and shaped right."""
    for role, entry in files.items():
        path = model_dir / entry["name"]
        if not path.exists():
            continue  # `verify` names missing files
        check_inside(path, model_dir)
        if path.suffix == ".onnx":
            check_no_external_data(path)
        elif role == "codebooks":
            load_codebooks(path, codebook_shape)


# ---- ONNX external data ----------------------------------------------------------------------------------------------
# Fields that lead to TensorProtos (onnx.proto3): ModelProto.graph=7, .training_info=20 (initialization=1,
# algorithm=2), .functions=25; GraphProto.node=1,
# .initializer=5, .sparse_initializer=15; NodeProto.attribute=5; AttributeProto.t=5, .g=6, .tensors=10,
# .graphs=11, .sparse_tensor=22, .sparse_tensors=23; FunctionProto.node=7; SparseTensorProto.values=1, .indices=2;
# TensorProto.external_data=13, .data_location=14 (EXTERNAL = 1).
_SCHEMA = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},
}
_MAX_DEPTH = 64


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _uses_external_data(data: memoryview, kind: str, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        raise ValueError("nesting too deep")
    children = _SCHEMA[kind]
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            if kind == "tensor" and field == 14 and value == 1:
                return True
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            if kind == "tensor" and field == 13:
                return True
            if field in children and _uses_external_data(data[pos: pos + length], children[field], depth + 1):
                return True
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return False


def check_no_external_data(path: Path) -> None:
    """Refuse an ONNX graph whose tensors live in external files: the manifest's sha256 does not cover them."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise ValueError("empty file")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    external = _uses_external_data(view, "model")
                finally:
                    view.release()
    except OSError as exc:
        raise ApucodecError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise ApucodecError(f"{path}: not an ONNX model ({exc})") from None
    if external:
        raise ApucodecError(f"{path}: stores weights in external data files, which the manifest's sha256 does not "
                            "cover; refused (re-export with the weights inside the .onnx)")
