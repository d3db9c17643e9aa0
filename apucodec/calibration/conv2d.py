"""Re-express every Conv1d of a graph as a Conv2d with height 1, for NPU compilers that think in 2-D.

The Vitis AI DPU constraint tables are written for conv2d (kernel w x h, stride w x h); AMD staff state that the
Ryzen AI EP supports Conv1d (amd/RyzenAI-SW issue #85, 2024), while the older Vitis AI 2.5 could not deploy it
(Xilinx/Vitis-AI issue #981). Without an NPU to measure on, both forms are offered: this pass rewrites the float
graph before quantization, so the quantizer calibrates exactly the graph the NPU will compile.

The rewrite is local and exact: each Conv gets its input through an Unsqueeze ([1, C, T] -> [1, C, 1, T]), its
weight [O, I, K] becomes [O, I, 1, K] with kernel/stride/dilation (1, x) and pads (0, b, 0, e), and a Squeeze takes
its output back to 3-D (both ops are in the Ryzen AI op list). Everything else — a step graph's cache slicing and
concatenation, its bounds masks, its state — is left as it is, so the rewrite needs no knowledge of what the
other ops do with the tensor rank, and the graph's inputs and outputs keep their shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apucodec.errors import ApucodecError, require

H_AXIS = 2
AXES_NAME = "conv2d_h_axis"


def _expand_ints(attr: Any, leading: int) -> None:
    values = list(attr.ints)
    del attr.ints[:]
    if attr.name == "pads":
        half = len(values) // 2
        attr.ints.extend([leading, *values[:half], leading, *values[half:]])
    else:
        attr.ints.extend([leading, *values])


def _as_conv2d(node: Any, weight: Any, helper: Any, numpy_helper: Any) -> None:
    """Turn Conv1d `node` (and its initializer `weight`) into the equivalent Conv2d with height 1, in place."""
    array = numpy_helper.to_array(weight)
    weight.CopyFrom(numpy_helper.from_array(np.expand_dims(array, H_AXIS), weight.name))
    present = {a.name for a in node.attribute}
    for name, default in (("strides", [1]), ("dilations", [1]), ("pads", [0, 0])):
        if name not in present:
            node.attribute.append(helper.make_attribute(name, default))
    for attr in node.attribute:
        if attr.name in ("kernel_shape", "strides", "dilations"):
            _expand_ints(attr, 1)
        elif attr.name == "pads":
            _expand_ints(attr, 0)
        elif attr.name == "auto_pad" and attr.s not in (b"", b"NOTSET"):
            raise ApucodecError(f"conv2d rewrite: {node.name} uses auto_pad, not supported")


def conv1d_to_conv2d(model: Any) -> Any:
    """A copy of `model` (onnx.ModelProto) with every Conv1d as Unsqueeze -> Conv2d(H=1) -> Squeeze."""
    onnx = require("onnx", "export")
    numpy_helper = require("onnx.numpy_helper", "export")
    helper = onnx.helper
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    initializers = {init.name: init for init in graph.initializer}
    graph.initializer.append(helper.make_tensor(AXES_NAME, onnx.TensorProto.INT64, [1], [H_AXIS]))
    nodes = []
    for index, node in enumerate(graph.node):
        if node.op_type != "Conv":
            nodes.append(node)
            continue
        weight = initializers.get(node.input[1])
        if weight is None or len(weight.dims) != 3:
            raise ApucodecError(f"conv2d rewrite: {node.name} is not a Conv1d with a constant weight")
        _as_conv2d(node, weight, helper, numpy_helper)
        name = node.name or f"Conv_{index}"
        source, sink = node.input[0], node.output[0]
        lifted, flat = f"{name}_in_h1", f"{name}_out_h1"
        node.input[0], node.output[0] = lifted, flat
        nodes += [helper.make_node("Unsqueeze", [source, AXES_NAME], [lifted], name=f"{name}_unsqueeze_h"), node,
                  helper.make_node("Squeeze", [flat, AXES_NAME], [sink], name=f"{name}_squeeze_h")]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    onnx.checker.check_model(out)
    return out
