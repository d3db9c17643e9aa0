"""One weights file per stage and precision, shared by all of that stage's step graphs (ONNX external data).

Why: a stage's step graphs (a live step of 4 frames, an offline one of 128) are the same network traced at two
sizes, so they hold the same convolution weights; stored inline, every graph carried its own copy (the 32.4M
default model: ~130 MB per graph). Here every initializer of at least MIN_BYTES is moved into
`{stage}.{precision}.weights`, written once per distinct content: tensors of different graphs with the same bytes
(and dtype) point at the same offset and length of the same file. Smaller initializers (shape constants, masks)
stay inline, where the graph's own sha256 covers them.

The weights file is a model file like any other: listed in the manifest with its sha256 and `format`
WEIGHTS_FORMAT, and each graph's entry names the weights files it reads (`external_data`). The runtime accepts
external data only under those rules (apucodec/model/checks.py). Offsets of large blobs are aligned to a page, so
ONNX Runtime can map them instead of copying.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import onnx

__all__ = ["MIN_BYTES", "SharedWeights", "share_weights", "weights_name"]

MIN_BYTES = 1024          # initializers smaller than this stay inside the graph
PAGE = 4096               # alignment of blobs of PAGE_FROM bytes or more (mmap-able by ORT)
PAGE_FROM = 64 * 1024
SMALL_ALIGN = 64


def weights_name(stage: str, precision: str = "fp32") -> str:
    """The file name (and manifest role) of a stage's shared weights: encoder.fp32.weights."""
    return f"{stage}.{precision}.weights"


@dataclass
class SharedWeights:
    """What `share_weights` wrote: the file, and per graph role how many of its tensors moved there."""

    path: Path
    tensors: dict[str, int] = field(default_factory=dict)   # role -> initializers moved out
    unique_blobs: int = 0
    shared_blobs: int = 0                                   # blobs read by more than one graph
    inline_bytes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.path.name} {self.path.stat().st_size / 1e6:.1f} MB: {self.unique_blobs} tensors, "
                f"{self.shared_blobs} of them shared by {len(self.tensors)} graphs")


def _align(offset: int, size: int) -> int:
    step = PAGE if size >= PAGE_FROM else SMALL_ALIGN
    return -(-offset // step) * step


def _raw(tensor: onnx.TensorProto) -> bytes:
    """The tensor's bytes in ONNX's raw little-endian layout, whichever field the exporter filled."""
    if tensor.HasField("raw_data"):
        return bytes(tensor.raw_data)
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor).tobytes()


def share_weights(protos: Mapping[str, onnx.ModelProto], folder: Path, stage: str,
                  precision: str = "fp32") -> SharedWeights:
    """Move the large initializers of `protos` (role -> graph, all of one stage and precision) into one file in
    `folder`, each distinct content once; the graphs are edited in place to point at it. Nothing else in a graph
    changes, so a graph saved afterwards computes exactly what it computed before."""
    name = weights_name(stage, precision)
    path = folder / name
    offsets: dict[tuple[int, str], tuple[int, int]] = {}   # (dtype, sha256) -> (offset, length)
    readers: dict[tuple[int, str], set[str]] = {}
    result = SharedWeights(path)
    end = 0
    with open(path, "wb") as out:
        for role, proto in protos.items():
            moved = 0
            for tensor in proto.graph.initializer:
                if tensor.data_location == onnx.TensorProto.EXTERNAL:
                    raise ValueError(f"{role}: initializer {tensor.name} already stores external data")
                if tensor.data_type == onnx.TensorProto.STRING:  # no raw byte layout to store
                    continue
                data = _raw(tensor)
                if len(data) < MIN_BYTES:
                    continue
                key = (tensor.data_type, hashlib.sha256(data).hexdigest())
                if key not in offsets:
                    start = _align(end, len(data))
                    out.write(b"\0" * (start - end))
                    out.write(data)
                    end = start + len(data)
                    offsets[key] = (start, len(data))
                readers.setdefault(key, set()).add(role)
                start, length = offsets[key]
                _point_at(tensor, name, start, length)
                moved += 1
            result.tensors[role] = moved
            result.inline_bytes[role] = proto.ByteSize()
    result.unique_blobs = len(offsets)
    result.shared_blobs = sum(1 for roles in readers.values() if len(roles) > 1)
    return result


def _point_at(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    """Make `tensor` read `length` bytes at `offset` of `location` instead of carrying them."""
    for data_field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data",
                       "string_data"):
        tensor.ClearField(data_field)
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = onnx.TensorProto.EXTERNAL
