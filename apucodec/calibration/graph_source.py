"""A step graph as one self-contained file, for the quantizers.

Why: a model directory's FP32 step graphs keep their weights in a shared file beside them (ONNX external data,
apucodec/export/shared_weights.py), found relative to the graph's folder. onnxruntime.quantization and Quark copy,
shape-infer and re-save the graph they are given into folders of their own, where that relative file is not, and
would write their outputs with references into the model directory. So before a quantizer sees a graph that reads
external data, it gets an inline copy in the pass's own work folder: the quantized graph it writes is then
self-contained too (one INT8 graph per stage: nothing to share), and the model directory is only read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apucodec.model.checks import external_data_refs


def reads_external_data(path: Path) -> bool:
    return bool(external_data_refs(path))


def inline_copy(model: Any, path: Path, work: Path) -> Path:
    """`path` itself if it carries all its tensors, else `model` (its onnx.load, tensors loaded) saved with every
    tensor inline as `work`/`path`.name."""
    if not reads_external_data(path):
        return path
    import onnx

    target = work / path.name
    onnx.save(model, str(target))  # onnx.load filled raw_data; a >2 GB graph would need external data again
    if reads_external_data(target):  # onnx keeps the external marking when data was loaded lazily
        raise ValueError(f"{path}: could not make a self-contained copy")
    return target
