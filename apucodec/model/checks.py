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

from apucodec.contract.manifest import WEIGHTS_FORMAT, FileEntry
from apucodec.errors import ApucodecError
from apucodec.model.rvq_projections import ROLE, load_projections

__all__ = ["check_external_data", "check_inside", "check_model_files", "check_no_external_data",
           "external_data_refs", "load_codebooks"]

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
    """Every listed file inside the directory; graphs read external data only from the weights files their entry
    lists (each listed in the manifest, so covered by a sha256), within those files; codebooks (and DAC's
    projections) loadable and shaped right."""
    weights = {e.name: e for e in files.values() if e.format == WEIGHTS_FORMAT}
    for role, entry in files.items():
        path = model_dir / entry.name
        if not path.exists():
            continue  # `verify` names missing files
        check_inside(path, model_dir)
        if path.suffix == ".onnx":
            allowed = {}
            for name in entry.external_data or []:
                if name not in weights:
                    raise ApucodecError(f"{path}: its manifest entry lists external data file {name!r}, which is "
                                        "not a weights file of the manifest; refused")
                try:
                    allowed[name] = (model_dir / name).stat().st_size
                except OSError as exc:
                    raise ApucodecError(f"{model_dir / name}: cannot read ({exc.strerror})") from None
            check_external_data(path, allowed)
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
EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum"})


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


def _string(data: memoryview) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def _entry(data: memoryview) -> tuple[str, str]:
    """A StringStringEntryProto (key = 1, value = 2)."""
    key = value = ""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        if tag & 7 != 2:
            raise ValueError("malformed external data entry")
        length, pos = _varint(data, pos)
        if pos + length > len(data):
            raise ValueError("truncated field")
        if tag >> 3 == 1:
            key = _string(data[pos: pos + length])
        elif tag >> 3 == 2:
            value = _string(data[pos: pos + length])
        pos += length
    return key, value


def _external_refs(data: memoryview, kind: str, found: list[dict[str, str]], depth: int = 0) -> None:
    """Append to `found` the external-data entries of every tensor reachable from `data` (a message of `kind`);
    a tensor marked EXTERNAL without entries is recorded as an empty dict."""
    if depth > _MAX_DEPTH:
        raise ValueError("nesting too deep")
    children = _SCHEMA[kind]
    entries: dict[str, str] = {}
    external = False
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            if kind == "tensor" and field == 14 and value == 1:
                external = True
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            if kind == "tensor" and field == 13:
                name, value = _entry(data[pos: pos + length])
                if name in entries:
                    raise ValueError(f"external data key {name!r} given twice")
                entries[name] = value
                external = True
            elif field in children:
                _external_refs(data[pos: pos + length], children[field], found, depth + 1)
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if external:
        found.append(entries)


def external_data_refs(path: Path) -> list[dict[str, str]]:
    """Every external-data reference of the ONNX file at `path` (key -> value per tensor), read without onnx."""
    found: list[dict[str, str]] = []
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise ValueError("empty file")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    _external_refs(view, "model", found)
                finally:
                    view.release()
    except OSError as exc:
        raise ApucodecError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise ApucodecError(f"{path}: not an ONNX model ({exc})") from None
    return found


def check_external_data(path: Path, allowed: Mapping[str, int]) -> None:
    """Refuse an ONNX graph that reads external data from anything but the files in `allowed` (plain names of
    weights files that the manifest lists, with their sha256, for this graph -> their sizes), or outside them.

    ONNX Runtime resolves a location relative to the graph's folder (and "*/_ORT_MEM_ADDR_/*" as a memory
    address), so a location with a path in it, or one no hash covers, would let a graph load bytes the manifest
    never vouched for."""
    for ref in external_data_refs(path):
        location = ref.get("location")
        unknown = sorted(set(ref) - EXTERNAL_KEYS)
        if unknown:
            raise ApucodecError(f"{path}: external data entry has unsupported key {unknown[0]!r}; refused")
        if not location:
            raise ApucodecError(f"{path}: a tensor is marked as external data without a location; refused")
        if location in (".", "..") or "/" in location or "\\" in location or "\0" in location \
                or os.path.isabs(location) or Path(location).name != location:
            raise ApucodecError(f"{path}: external data location {location!r} is not a plain file name inside the "
                                "model directory; refused")
        if location not in allowed:
            raise ApucodecError(f"{path}: stores weights in external data file {location!r}, which the manifest "
                                "does not list for this graph with a sha256; refused")
        offset, length = ref.get("offset", "0"), ref.get("length")
        if length is None or not offset.isdigit() or not length.isdigit() or not offset.isascii() \
                or not length.isascii():
            raise ApucodecError(f"{path}: external data in {location!r} needs a decimal offset and length, got "
                                f"offset {offset!r}, length {length!r}; refused")
        if int(offset) + int(length) > allowed[location]:
            raise ApucodecError(f"{path}: external data at offset {offset} length {length} runs past the end of "
                                f"{location} ({allowed[location]} bytes); refused")


def check_no_external_data(path: Path) -> None:
    """Refuse an ONNX graph whose tensors live in external files (a graph whose manifest entry lists none)."""
    check_external_data(path, {})
