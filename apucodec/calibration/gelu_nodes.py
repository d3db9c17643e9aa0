"""The nodes of each exact GELU (Div -> Erf -> Add -> Mul -> Mul) that stay float in the CPU INT8 graphs.

Why: torch exports exact GELU at opset 17 as five elementwise nodes, x * 0.5 * (1 + erf(x / sqrt 2)). The QDQ
quantizer quantizes the Adds and Muls among them, which puts Q/DQ pairs inside the activation, and the Div and Erf
run in float between them. ONNX Runtime then cannot fuse the chain, so every activation makes seven passes over
the tensor. Profiled on the default 32.4M config's INT8 encoder step graph (64 frames): QLinearConv took only 28%
of the step; Erf, Div, the GELU's QLinearMul/QLinearAdd and the Q/DQ around them took most of the rest. Left
float and written as ONNX Runtime's single Gelu kernel (fuse_gelus) between one DequantizeLinear and one
QuantizeLinear, each activation is one pass. The exact GELU is kept (Gelu computes the same erf form), so the
model's behaviour does not change. LeakyReLU models have no such chain: ORT runs them as QLinearLeakyRelu.
"""

from __future__ import annotations

from typing import Any

from onnx import helper

CONTRIB_DOMAIN = "com.microsoft"


def gelu_node_names(model: Any) -> list[str]:
    """Names of the nodes of every Div -> Erf -> Add -> Mul -> Mul chain in the graph."""
    graph = model.graph
    producer = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(node: Any, op_type: str) -> Any | None:
        users = consumers.get(node.output[0], [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    names: list[str] = []
    for erf in (n for n in graph.node if n.op_type == "Erf"):
        div = producer.get(erf.input[0])
        add = only_consumer(erf, "Add")
        mul = only_consumer(add, "Mul") if add is not None else None
        half = only_consumer(mul, "Mul") if mul is not None else None
        if div is None or div.op_type != "Div" or half is None or div.input[0] not in mul.input:
            continue
        names += [div.name, erf.name, add.name, mul.name, half.name]
    return names


def fuse_gelus(model: Any, names: list[str]) -> int:
    """Replace each float GELU chain (gelu_node_names, kept float by the quantizer under the same names) with one
    com.microsoft Gelu node in place; return how many were fused.

    ONNX Runtime fuses the chain itself in an FP32 graph, but not between QDQ nodes, so the INT8 graph is written
    with the fused node already. Gelu is an ONNX Runtime contrib op with a CPU kernel: the CPU INT8 graphs are made
    for ONNX Runtime's CPU EP only.
    """
    graph = model.graph
    nodes = {node.name: node for node in graph.node}
    constants: set[str] = set()
    fused = 0
    for start in range(0, len(names) - 4, 5):
        chain = [nodes.get(name) for name in names[start: start + 5]]
        if any(node is None for node in chain):
            continue
        div, half = chain[0], chain[4]
        position = list(graph.node).index(div)
        gelu = helper.make_node("Gelu", [div.input[0]], [half.output[0]], name=f"{div.name}_gelu",
                                domain=CONTRIB_DOMAIN)
        for node in chain:
            graph.node.remove(node)
            constants.update(node.input)
        graph.node.insert(position, gelu)
        fused += 1
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name in constants and i.name not in used]:
        graph.initializer.remove(init)        # the chain's sqrt(2), 1 and 0.5 ...
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] in constants - used]:
        graph.node.remove(node)               # ... as initializers or as Constant nodes
    if fused and not any(op.domain == CONTRIB_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    return fused
