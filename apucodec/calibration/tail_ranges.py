"""Activation ranges at an exact tail percentile of every calibration value (`--method tail`, the encoder's default).

Why: a uint8 activation has 256 steps over its range, fixed per tensor. The encoder's codes are decided on quiet
frames as much as on loud ones, and on quiet frames those steps are coarse: on the bundled model over the dev set,
frames at -50..-35 dBFS changed their first code in 60-85% of cases with ORT's percentile ranges, frames at
-20..-15 dBFS in 15%. A narrower range gives every frame a finer grid at the cost of clipping the rarest peaks.
ORT's `percentile` method works on a histogram of |x| (symmetric by construction, 2048 bins) and at 99.999 it lands
close to min/max; here each side is cut at its own exact percentile of all values seen, by keeping the largest and
the smallest values of each tensor (a few MB in all), so the range does not depend on bins or on a subsample.
Measured on the bundled model (docs/bench/int8-agreement.md): first-codebook agreement with FP32 66% with ORT's
percentile ranges, 77-80% at the 99.95-99.98th percentile taken from subsamples, whose estimates varied by several
points between halves of the calibration data (this is why the tails are kept exactly).

The result is ORT's TensorsData with min/max ranges, so `quantize_static` reads it as a MinMax calibration cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TAIL_PERCENTILE = 99.98
TensorRange = tuple[float, float]


class TailCollector:
    """Per tensor, the `keep` largest and smallest values seen and the count, fed one array at a time.

    `keep` must cover the tail of the whole calibration set (1 - percentile/100 of all values of the tensor), so
    the caller sizes it from the number of feeds and the first feed's size (`tail_size`)."""

    def __init__(self) -> None:
        self.top: dict[str, np.ndarray] = {}
        self.bottom: dict[str, np.ndarray] = {}
        self.count: dict[str, int] = {}

    def add(self, name: str, values: np.ndarray, keep: int) -> None:
        flat = np.asarray(values, dtype=np.float32).reshape(-1)
        self.count[name] = self.count.get(name, 0) + flat.size
        top = np.concatenate([self.top.get(name, flat[:0]), flat])
        bottom = np.concatenate([self.bottom.get(name, flat[:0]), flat])
        if top.size > keep:
            top = np.partition(top, top.size - keep)[top.size - keep:]
            bottom = np.partition(bottom, keep - 1)[:keep]
        self.top[name], self.bottom[name] = top, bottom

    def range(self, name: str, percentile: float) -> TensorRange:
        """(low, high): the values with a fraction 1 - percentile/100 of all values beyond each of them."""
        beyond = int(math.floor(self.count[name] * (1 - percentile / 100)))
        top, bottom = np.sort(self.top[name]), np.sort(self.bottom[name])
        if beyond >= top.size:
            raise ValueError(f"{name}: the kept tail ({top.size}) is shorter than the percentile needs ({beyond})")
        return float(bottom[beyond]), float(top[top.size - 1 - beyond])


def tail_size(values_per_feed: int, feeds: int, percentile: float) -> int:
    """Values to keep per side so that the percentile's cut is among them (with margin for varying feed sizes)."""
    return int(math.ceil(2 * values_per_feed * feeds * (1 - percentile / 100))) + 2


def calibrated_tensors(model: Any, op_types: Sequence[str]) -> list[str]:
    """The float tensors (inputs and outputs, not initializers) of the nodes of `op_types`: what ORT's calibrators
    calibrate and its quantizer may quantize."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*graph.value_info, *graph.input, *graph.output]}
    initializers = {init.name for init in graph.initializer}
    kinds = set(op_types)
    names: list[str] = []
    for node in graph.node:
        if node.op_type not in kinds:
            continue
        for name in [*node.input, *node.output]:
            if name and name not in initializers and types.get(name) == onnx.TensorProto.FLOAT and name not in names:
                names.append(name)
    return names


def tail_ranges(source: Path, feeds: Sequence[dict[str, np.ndarray]], op_types: Sequence[str],
                percentile: float = DEFAULT_TAIL_PERCENTILE, work: Path | None = None,
                on_feed: Callable[[int], None] | None = None) -> dict[str, TensorRange]:
    """Each calibrated tensor's (low, high) at `percentile` over all of `feeds` run through the graph `source`
    (a self-contained ONNX file); one inference per feed with every calibrated tensor as an extra output."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(source))
    names = calibrated_tensors(model, op_types)
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    augmented = (work or source.parent) / "tail_augmented.onnx"
    onnx.save(model, str(augmented))
    del model
    session = ort.InferenceSession(str(augmented), providers=["CPUExecutionProvider"])
    collector = TailCollector()
    keep: dict[str, int] = {}
    for done, feed in enumerate(feeds, 1):
        for name, value in zip(names, session.run(names, feed), strict=True):
            keep.setdefault(name, tail_size(value.size, len(feeds), percentile))
            collector.add(name, value, keep[name])
        if on_feed is not None:
            on_feed(done)
    return {name: collector.range(name, percentile) for name in names}


def tensors_data(ranges: dict[str, TensorRange]) -> Any:
    """`ranges` as ORT's TensorsData (a MinMax calibration), ready for save_tensors_data / quantize_static."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

    return TensorsData(CalibrationMethod.MinMax, {name: TensorData(lowest=np.float32(low), highest=np.float32(high))
                                                  for name, (low, high) in ranges.items()})
