"""CPU INT8 graphs with onnxruntime.quantization: uint8 activations, int8 per-channel weights, QDQ.

Why these choices: on x86, ONNX Runtime's CPU EP fuses DequantizeLinear -> Conv -> QuantizeLinear into an integer
kernel (QLinearConv, MLAS's u8s8 GEMM, which uses VNNI/AMX where the CPU has them) only when the activations are
*uint8*; int8 activations (the NPU's XINT8 format) stay DQ -> float Conv -> Q and run slower than FP32. Weights are
int8 symmetric per output channel, which costs nothing at run time and keeps thin channels accurate.

The function is generic over the graph: any number of named inputs, fed by a caller-supplied iterable of feed dicts.
A stateful step graph must be calibrated on the states it will really see, so the caller runs the FP32 steps in
order and yields each step's `{audio, state, bounds}`; a windowed graph just yields `{audio: window}`. Nodes that
must stay float (mask/bounds arithmetic, state bookkeeping) are excluded by name or op type.

Node names are kept as given: no ORT pre-processing runs first (it would rename/fuse nodes and break exclusion by
name). ORT's calibrator runs its session on all cores; each feed handed over is reported through `on_feed`, which
is where calibration's time goes (one float inference per feed), so the progress follows the real work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apucodec.calibration.graph_source import inline_copy
from apucodec.calibration.range_calibration import (
    Feed,
    FeedCallback,
    FeedReader,
    calibrate_ranges,
    ort_methods,
    tail_calibration,
)
from apucodec.calibration.state_ranges import state_range_ties, tie_ranges
from apucodec.contract.npu_ops import op_counts
from apucodec.errors import ApucodecError, first_line, require

# What gets quantized. CONV_OP_TYPES: only the convolutions (QLinearConv: input and output on uint8 grids), every
# other node float between them. WIDE_OP_TYPES adds the ops ORT also runs on uint8 (QLinearLeakyRelu/Add/Mul, uint8
# data movement): fewer float passes, but every one of those tensors is rounded again and the errors add up. Bundled
# model, dev set (docs/bench/int8-agreement.md): encoder codes equal to FP32 80.1% wide, 89.0% convolutions only
# (12% slower); the decoder's audio output tolerates the wide set, whose speed it needs (10 s, whole pipeline with
# both stages convolutions only 0.65 s, wide 0.47 s): cpu_quantize.STAGE_OP_TYPES. Whole-sequence (GroupNorm)
# graphs are convolutions only: no integer GroupNorm, so the wide set only wrapped float kernels in Q/DQ (32.4M seed
# encoder, 5 s: 9.0 s wide, 6.5 s). ConvTranspose is first rewritten as Convs (calibration/conv_transpose.py).
CONV_OP_TYPES: tuple[str, ...] = ("Conv", "ConvTranspose")
WIDE_OP_TYPES: tuple[str, ...] = ("Conv", "ConvTranspose", "LeakyRelu", "Add", "Mul", "MatMul", "Gemm", "Concat",
                                  "Reshape", "Transpose", "Slice")
DEFAULT_OP_TYPES = CONV_OP_TYPES
METHODS = ("minmax", "percentile", "entropy", "tail")
DEFAULT_METHOD = "percentile"   # measured against minmax: see DEFAULT_CPU_CLIPS in cpu_quantize.py



@dataclass
class CpuInt8Result:
    path: Path
    feeds: int
    method: str
    seconds: float
    ops: dict[str, int]                 # op counts of the written QDQ graph
    excluded_nodes: list[str]
    polyphase: list[str]                # ConvTranspose nodes rewritten as polyphase Convs
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES   # the op types quantized

    def to_dict(self) -> dict[str, Any]:
        return {"format": "QDQ", "activations": "uint8 (asymmetric, per tensor)",
                "weights": "int8 (symmetric, per channel)", "op_types": list(self.op_types),
                "calibration_method": self.method,
                "calibration_feeds": self.feeds, "seconds": round(self.seconds, 2),
                "excluded_nodes": self.excluded_nodes[:50], "conv_transpose_as_polyphase_conv": len(self.polyphase),
                "graph_ops": self.ops}


def _ort_quantization() -> Any:
    require("onnx", "quantize")
    import onnxruntime.quantization as q

    return q


def excluded_node_names(model: Any, exclude_nodes: Iterable[str] = (),
                        exclude_op_types: Iterable[str] = ()) -> list[str]:
    """Names of the graph's nodes to keep float: those named, plus every node of the listed op types."""
    names = set(exclude_nodes)
    unknown = names - {n.name for n in model.graph.node}
    if unknown:
        raise ApucodecError(f"nodes to exclude not in the graph: {', '.join(sorted(unknown)[:5])}")
    types = set(exclude_op_types)
    return sorted(names | {n.name for n in model.graph.node if n.op_type in types})


@contextlib.contextmanager
def _quiet_ort_logs() -> Iterator[None]:
    """ORT's quantizer logs a pre-processing hint through the root logger on every call; we skip pre-processing on
    purpose (node names must survive), so that one warning is noise."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _name_unnamed_nodes(model: Any) -> bool:
    """ORT's quantizer needs unique node names; torch exports sometimes leave some empty."""
    seen: set[str] = set()
    changed = False
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
            changed = True
        seen.add(node.name)
    return changed


def quantize_graph_cpu_int8(fp32_path: str | Path, out_path: str | Path, feeds: Iterable[Feed], *,
                            method: str = DEFAULT_METHOD, op_types: Sequence[str] = DEFAULT_OP_TYPES,
                            exclude_nodes: Iterable[str] = (), exclude_op_types: Iterable[str] = (),
                            polyphase: bool = True, on_feed: FeedCallback | None = None,
                            gelu_nodes: Sequence[str] = (), ranges_out: Path | None = None,
                            ranges_in: Path | None = None) -> CpuInt8Result:
    """Write a QDQ INT8 copy of `fp32_path` to `out_path`, calibrated on `feeds` (dicts keyed by the graph's inputs).

    The output is written to a temporary file beside `out_path` and renamed into place, so a failure or Ctrl-C
    leaves no partial graph behind. With `polyphase`, 1-D ConvTranspose nodes are first rewritten as equivalent
    Convs (an excluded ConvTranspose keeps its exclusion on the nodes that replace it).

    Exclusion keeps a node out of the quantizer; ORT's graph optimizer can still fuse it into an integer kernel
    when *all* its inputs come from DequantizeLinear and its output only feeds QuantizeLinear (a node between two
    quantized ones). Nodes fed by float-only bookkeeping (a mask computed from `bounds`, a state reshape read by a
    float node) stay float, which is what step graphs need.

    `gelu_nodes` (calibration/gelu_nodes.py's gelu_node_names) are kept float and written as one Gelu node per
    chain in the output graph.

    `ranges_out` keeps the calibrated activation ranges (ORT's calibration cache); `ranges_in` quantizes with such
    ranges instead of calibrating (`feeds` may then be empty). Why: the step graphs of one stage at different step
    sizes have the same tensors, and quantized with the same ranges they compute the same integers, so a live
    stream and a one-shot call at INT8 agree; that also needs every cache read from `state` on its Concat's grid
    (calibration/state_ranges.py), which is applied to the ranges either way.
    """
    if method not in METHODS:
        raise ApucodecError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    q = _ort_quantization()
    import onnx

    started = time.perf_counter()
    fp32_path, out_path = Path(fp32_path).absolute(), Path(out_path).absolute()
    model = onnx.load(str(fp32_path))
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    renamed = _name_unnamed_nodes(model)
    excluded = excluded_node_names(model, [*exclude_nodes, *gelu_nodes], exclude_op_types)
    rewritten: dict[str, list[str]] = {}
    if polyphase:
        from apucodec.calibration.conv_transpose import conv_transpose_to_conv

        model, rewritten = conv_transpose_to_conv(model)
        excluded = sorted({new for name in excluded for new in rewritten.get(name, [name])})
    reader = FeedReader(feeds, inputs, fp32_path, on_feed)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    from apucodec.model.work_dirs import work_dir

    with work_dir(tempfile.gettempdir(), "apucodec-int8-") as work:  # a killed run's folder is swept by the next
        source = Path(work) / "fp32.onnx"
        if renamed or rewritten:
            onnx.save(model, str(source))
        else:  # the graph itself, or an inline copy if it reads a shared weights file (graph_source.py)
            source = inline_copy(model, fp32_path, Path(work))
        del model
        try:
            with _quiet_ort_logs():
                cache = Path(work) / "ranges.json"
                if ranges_in is not None:
                    ranges = q.calibrate.load_tensors_data(ranges_in)
                elif method == "tail":  # exact tail percentiles (calibration/tail_ranges.py)
                    ranges = tail_calibration(source, Path(work), reader, op_types)
                else:
                    ranges = calibrate_ranges(q, source, Path(work), reader, method, op_types)
                tie_ranges(ranges, state_range_ties(onnx.load(str(source), load_external_data=False)))
                q.calibrate.save_tensors_data(ranges, cache)
                if ranges_out is not None:
                    import shutil

                    shutil.copyfile(cache, ranges_out)
                q.quantize_static(str(source), tmp, None, quant_format=q.QuantFormat.QDQ,
                                  op_types_to_quantize=list(op_types), per_channel=True, reduce_range=False,
                                  activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                                  nodes_to_exclude=excluded, calibrate_method=ort_methods(q)[method],
                                  extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                                  calibration_cache_path=cache)
            quantized = onnx.load(tmp)
            if gelu_nodes:
                from apucodec.calibration.gelu_nodes import fuse_gelus

                fuse_gelus(quantized, list(gelu_nodes))
                onnx.save(quantized, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out_path)
        except ApucodecError:
            raise
        except Exception as exc:  # onnx / onnxruntime raise assorted types
            raise ApucodecError(f"{fp32_path}: onnxruntime.quantization could not quantize it "
                                f"({first_line(exc, with_type=True)})") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
    ops = op_counts(quantized.graph.node)
    return CpuInt8Result(out_path, reader.count, method, time.perf_counter() - started, dict(sorted(ops.items())),
                         excluded, sorted(rewritten), tuple(op_types))
