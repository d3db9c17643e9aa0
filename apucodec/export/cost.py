"""Arithmetic cost of a static ONNX graph: multiply-accumulate FLOPs of its Conv, ConvTranspose, MatMul and Gemm nodes.

Why count at all: "is the runtime slow or is the model big?" can only be answered against the work a window
costs. Export records the count in the manifest, so `apucodec bench` can print the GFLOP/s each stage reached
without onnx installed, and `benchmarks/pipeline_vs_torch.py` can put the measured speeds next to the CPU's GEMM
roofline. Elementwise ops (activations, Add) are left out: they are memory-bound, and their cost shows up in the
profile, not in a FLOP count. A multiply-accumulate counts as 2 FLOPs, as GEMM GFLOP/s figures do.
"""

from __future__ import annotations

import math

import onnx
from onnx import numpy_helper, shape_inference

COUNTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Static shape of every value the graph names: inputs, outputs, inferred intermediates, weights."""
    try:
        graph = shape_inference.infer_shapes(model).graph
    except shape_inference.InferenceError:
        graph = model.graph  # a count is optional metadata: fall back to the shapes the graph already records
    shapes: dict[str, list[int]] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            shapes[node.output[0]] = list(numpy_helper.to_array(node.attribute[0].t).shape)
    return shapes


def _node_flops(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int | None:
    """FLOPs of one counted node, or None when a shape it needs is not static."""
    names = [*node.input[:2], node.output[0]]
    if any(name not in shapes for name in names):
        return None
    first, second, out = (shapes[name] for name in names)
    if node.op_type == "Conv":
        # every output element sums C_in/group * kernel products
        return 2 * math.prod(out) * math.prod(second[1:])
    if node.op_type == "ConvTranspose":
        # every input element scatters into C_out/group * kernel outputs (weight is [C_in, C_out/group, k...])
        return 2 * math.prod(first) * math.prod(second[1:])
    if node.op_type == "Gemm":
        transposed = next((a.i for a in node.attribute if a.name == "transA"), 0)
        return 2 * math.prod(out) * (first[0] if transposed else first[-1])
    return 2 * math.prod(out) * first[-1]  # MatMul: batch x M x N outputs, K each


def graph_gflop(model: onnx.ModelProto) -> float | None:
    """GFLOP of one run of the graph, or None when a counted node has a dynamic shape."""
    shapes = _known_shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type in COUNTED_OPS:
            flops = _node_flops(node, shapes)
            if flops is None:
                return None
            total += flops
    return total / 1e9
