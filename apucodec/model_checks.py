"""What a model directory may contain, checked before anything in it is loaded or run.

A model directory is shared like any download, so its manifest is untrusted: a file name in it could be `../x.npy`
or `/etc/passwd` (with a matching sha256), an ONNX graph could pull its weights from an external-data file the
manifest's hashes never cover, `codebooks.npy` could be a pickle, a text file, or a header that promises 4 TiB, and a
config value could be 0 where the runtime divides by it. Each of these ends here with one line naming the file.

`load_model_dir` reads the manifest through `apucodec.contract.manifest.read_manifest`, which checks names and
values before any path is built (contract/manifest_checks.py), then calls `check_model_files` here (graphs and
codebooks, after the hashes), so `run`, `encode`, `decode`, `bench` and `doctor --model` all refuse the
same things. Torch-free and onnx-free: ONNX files are walked with a small protobuf reader.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from apucodec.contract.manifest import FileEntry
from apucodec.contract.manifest_checks import check_file_name
from apucodec.errors import ApucodecError
from apucodec.rvq_projections import ROLE, load_projections

__all__ = ["check_file_name", "check_inside", "check_model_files", "check_no_external_data", "load_codebooks"]

CODEBOOK_DTYPES = (np.dtype("float32"), np.dtype("float16"))


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


def check_model_files(model_dir: Path, files: Mapping[str, FileEntry], codebook_shape: tuple[int, int, int],
                      latent_dim: int = 0) -> None:
    """Every listed file inside the directory; graphs without external data; codebooks loadable and shaped right."""
    for role, entry in files.items():
        path = model_dir / entry.name
        if not path.exists():
            continue  # `verify` names missing files
        check_inside(path, model_dir)
        if path.suffix == ".onnx":
            check_no_external_data(path)
        elif role == "codebooks":
            load_codebooks(path, codebook_shape)
        elif role == ROLE:  # DAC's projections: a pickle-free .npz, names, shapes, values checked
            load_projections(path, codebook_shape[0], latent_dim, codebook_shape[2])


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
