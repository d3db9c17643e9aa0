"""Re-express a Conv1d encoder graph as Conv2d with height 1, for NPU compilers that think in 2-D.

The Vitis AI DPU constraint tables are written for conv2d (kernel w x h, stride w x h); AMD staff state that the
Ryzen AI EP supports Conv1d (amd/RyzenAI-SW issue #85, 2024), while the older Vitis AI 2.5 could not deploy it
(Xilinx/Vitis-AI issue #981). Without an NPU to measure on, both forms are offered: this pass rewrites the float
graph before quantization, so the quantizer calibrates exactly the graph the NPU will compile.

The rewrite is exact: a [1, C, T] tensor becomes [1, C, 1, T]; every Conv weight [O, I, K] becomes [O, I, 1, K]
with kernel/stride/dilation (1, x) and pads (0, b, 0, e); the graph input gets one Unsqueeze and the output one
Squeeze (both in the Ryzen AI op list), so the file's inputs and outputs keep their 3-D shapes and the runtime
needs no change. Only graphs made of Conv and shape-agnostic element-wise ops are accepted — anything that
reshapes or normalises over an axis (GroupNorm) is refused rather than silently mistranslated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apucodec.errors import ApucodecError
from apucodec.extras import require

# Element-wise ops whose result does not depend on the tensor rank, given scalar (or absent) constant operands.
ELEMENTWISE_OPS = frozenset({"LeakyRelu", "Relu", "Add", "Sub", "Mul", "Div", "Erf", "Tanh", "Sigmoid", "Identity",
                             "Clip", "Pow", "Sqrt", "Neg", "Abs", "Elu", "Gelu"})
H_AXIS = 2


def _constant_values(graph: Any) -> dict[str, np.ndarray]:
    numpy_helper = require("onnx.numpy_helper", "export")
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _expand_ints(attr: Any, leading: int) -> None:
    values = list(attr.ints)
    del attr.ints[:]
    if attr.name == "pads":
        half = len(values) // 2
        attr.ints.extend([leading, *values[:half], leading, *values[half:]])
    else:
        attr.ints.extend([leading, *values])


def conv1d_to_conv2d(model: Any) -> Any:
    """A copy of `model` (onnx.ModelProto) with every Conv1d as Conv2d(H=1); same inputs and outputs."""
    onnx = require("onnx", "export")
    numpy_helper = require("onnx.numpy_helper", "export")
    helper = onnx.helper
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ApucodecError("conv2d rewrite: expected one graph input and one output")
    constants = _constant_values(graph)
    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        if node.op_type == "Conv":
            weight = initializers.get(node.input[1])
            if weight is None or len(weight.dims) != 3:
                raise ApucodecError(f"conv2d rewrite: {node.name} is not a Conv1d with a constant weight")
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
        elif node.op_type in ELEMENTWISE_OPS:
            for name in node.input[1:]:
                if name in constants and constants[name].size != 1:
                    raise ApucodecError(f"conv2d rewrite: {node.name} broadcasts a non-scalar constant "
                                        f"{list(constants[name].shape)}; cannot move it to 4-D safely")
        else:
            raise ApucodecError(f"conv2d rewrite: op {node.op_type} ({node.name}) is not known to be rank-agnostic; "
                                "only Conv and element-wise graphs (weight-norm encoders) can be rewritten")

    source = graph.input[0].name
    sink = graph.output[0].name
    axes = helper.make_tensor("conv2d_h_axis", onnx.TensorProto.INT64, [1], [H_AXIS])
    graph.initializer.append(axes)
    lifted, flat = f"{source}_h1", f"{sink}_h1"
    for node in graph.node:
        node.input[:] = [lifted if name == source else name for name in node.input]
        node.output[:] = [flat if name == sink else name for name in node.output]
    graph.node.insert(0, helper.make_node("Unsqueeze", [source, axes.name], [lifted], name="conv2d_unsqueeze_h"))
    graph.node.append(helper.make_node("Squeeze", [flat, axes.name], [sink], name="conv2d_squeeze_h"))
    del graph.value_info[:]
    out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    onnx.checker.check_model(out)
    return out
