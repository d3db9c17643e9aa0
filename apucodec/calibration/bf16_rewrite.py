"""Rewrite an FP32 graph's activations into ops the Ryzen AI BF16 list covers, without changing its function.

The BF16 column of AMD's operator table (see apucodec.contract.npu_ops.RYZEN_AI_BF16_OPS) lists Max, Mul, Add,
Div and Erf but not LeakyRelu, Relu or Gelu, so an FP32 graph that uses them leaves those nodes on the CPU when the
Vitis AI EP compiles it to BF16 (every one of the encoder's 29 LeakyRelu nodes would split the graph). The
identities used, exact in real arithmetic and in IEEE float for the ranges involved:

    LeakyRelu(x, a) = Max(x, a*x)                    for 0 <= a <= 1
    Relu(x)         = Max(x, 0)
    Gelu(x)         = 0.5 * x * (1 + Erf(x / sqrt 2))   (approximate="none"; "tanh" is left alone)
    Elu(x, a)       = Max(x, 0) + a * (Exp(Min(x, 0)) - 1)    (EnCodec's activation; exact for x >= 0, and within
                                                           float rounding of expm1 below)

Applied to a ModelProto (onnx is an export-time dependency, not the runtime's); the result is checked for
numerical equality with ONNX Runtime in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def bf16_rewrite(model: Any) -> tuple[Any, dict[str, int]]:
    """(a rewritten copy of `model`, {op: nodes replaced}); ops without a BF16-listed form are left alone."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    nodes, replaced, constants = [], {}, {}

    def constant(value: float) -> str:
        key = f"bf16_rewrite_const_{len(constants)}"
        if value not in constants:
            graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), key))
            constants[value] = key
        return constants[value]

    for index, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{index}"
        x, y = (node.input[0] if node.input else ""), (node.output[0] if node.output else "")
        if node.op_type == "LeakyRelu" and node.domain in ("", "ai.onnx") and 0 <= _attr(node, "alpha", 0.01) <= 1:
            scaled = f"{name}_scaled"
            nodes += [helper.make_node("Mul", [x, constant(float(_attr(node, "alpha", 0.01)))], [scaled],
                                       name=f"{name}_mul"),
                      helper.make_node("Max", [x, scaled], [y], name=f"{name}_max")]
        elif node.op_type == "Relu" and node.domain in ("", "ai.onnx"):
            nodes.append(helper.make_node("Max", [x, constant(0.0)], [y], name=f"{name}_max"))
        elif node.op_type == "Gelu" and _attr(node, "approximate", b"none") in (b"none", "none"):
            scaled, erf, one_plus, half_x = (f"{name}_{s}" for s in ("scaled", "erf", "one_plus", "half_x"))
            nodes += [helper.make_node("Mul", [x, constant(1 / math.sqrt(2))], [scaled], name=f"{name}_div"),
                      helper.make_node("Erf", [scaled], [erf], name=f"{name}_erf"),
                      helper.make_node("Add", [erf, constant(1.0)], [one_plus], name=f"{name}_add"),
                      helper.make_node("Mul", [x, constant(0.5)], [half_x], name=f"{name}_half"),
                      helper.make_node("Mul", [half_x, one_plus], [y], name=f"{name}_mul")]
        elif node.op_type == "Elu" and node.domain in ("", "ai.onnx"):
            pos, neg, exp, less, scaled = (f"{name}_{s}" for s in ("pos", "neg", "exp", "less", "scaled"))
            alpha = float(_attr(node, "alpha", 1.0))
            nodes += [helper.make_node("Max", [x, constant(0.0)], [pos], name=f"{name}_max"),
                      helper.make_node("Min", [x, constant(0.0)], [neg], name=f"{name}_min"),
                      helper.make_node("Exp", [neg], [exp], name=f"{name}_exp"),
                      helper.make_node("Add", [exp, constant(-1.0)], [less], name=f"{name}_sub"),
                      helper.make_node("Mul", [less, constant(alpha)], [scaled], name=f"{name}_alpha"),
                      helper.make_node("Add", [pos, scaled], [y], name=f"{name}_add")]
        else:
            nodes.append(node)
            continue
        replaced[node.op_type] = replaced.get(node.op_type, 0) + 1
    del graph.node[:]
    graph.node.extend(nodes)
    return out, replaced
