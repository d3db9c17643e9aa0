"""NPU readiness of a quantized graph: which op types the Vitis AI EP documents as INT8-supported.

Part of the contract because two sides read the same lists: quantization (calibration/) checks the graph it writes,
and `doctor` (tools/) checks the graphs a model directory holds. Neither onnx nor torch is imported here.

Any op outside the list is placed on the CPU by the Vitis AI EP even on a Ryzen AI APU (the EP partitions the
graph and runs unsupported nodes on the CPU EP), so the report flags them. Sources, as retrieved for this project
(no page is a guarantee for every configuration of an op; AMD's tables say as much):

* Ryzen AI Software, "Model Compatibility" (https://ryzenai.docs.amd.com/en/latest/modelcompat.html), the
  release that listed the IPU-supported ONNX operators inline: Add, And, AveragePool, BatchNormalization, Clip,
  Concat, Conv, ConvTranspose, Gemm, GlobalAveragePool, GlobalMaxPool, Identity, LayerNormalization, LSTM, Max,
  MaxPool, Mul, Pad, PRelu, Relu, Resize, RNN, Sigmoid, Slice, Softmax, Split, Squeeze, Unsqueeze, Upsample,
  SpaceToDepth. (The current page defers to https://ryzenai.docs.amd.com/en/latest/ops_support.html, which could
  not be retrieved here.)
* AMD Vitis AI 6.2, "Supported Operators"
  (https://vitisai.docs.amd.com/projects/gen2/en/latest/docs/additional_information/ops_support.html), the INT8
  column, rows Abs..Sin as retrieved (the table was cut off after "Sin"; rows marked N/A for INT8 — Attention,
  CumSum, GridSample, PRelu, ReduceL2, Selu — are left out).

QuantizeLinear/DequantizeLinear (standard or com.microsoft, which A16W8 uses for int16) are the quantization
markers the compiler consumes, not compute, so they are not checked. A Conv whose strides/pads/dilations/
kernel_shape/group rely on ONNX defaults is reported too: a third-party report (onnxsim PR #1404, measured on Ryzen
AI 1.8) found that such a Conv aborts Vitis AI EP session creation; torch's exporter writes them explicitly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

RYZEN_AI_MODELCOMPAT = "ryzenai.docs.amd.com modelcompat (IPU-supported ONNX operators)"
VITIS_AI_62_INT8 = "vitisai.docs.amd.com gen2 6.2 ops_support (INT8 column)"

RYZEN_AI_OPS = frozenset({
    "Add", "And", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "ConvTranspose", "Gemm",
    "GlobalAveragePool", "GlobalMaxPool", "Identity", "LayerNormalization", "LSTM", "Max", "MaxPool", "Mul", "Pad",
    "PRelu", "Relu", "Resize", "RNN", "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Unsqueeze", "Upsample",
    "SpaceToDepth",
})

VITIS_AI_62_INT8_OPS = frozenset({
    "Abs", "Add", "And", "AveragePool", "BatchNormalization", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor",
    "Cast", "Ceil", "Clip", "Concat", "ConstantOfShape", "ConvTranspose", "Cos", "DepthToSpace", "Div", "Einsum",
    "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "Gelu", "GlobalAveragePool", "Greater",
    "GreaterOrEqual", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "LayerNormalization",
    "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "Max", "MaxPool", "Min", "Mish", "Mul", "Neg", "Not",
    "Or", "Pad", "Pow", "QuickGelu", "RMSLayerNormalization", "Range", "Reciprocal", "ReduceL1", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape",
    "Resize", "Round", "Scaler", "ScatterND", "Shape", "SiLU", "Sigmoid", "Sign", "Sin",
})

# BF16 column of "Supported Operators" for Ryzen AI 1.5.0 (github.com/amd/ryzen-ai-documentation,
# docs/ops_support.rst at commit 0e172c10): the ops an FP32 graph may use to compile entirely to BF16 on the NPU.
# Note what is missing: LeakyRelu, Gelu, Relu, Clip and Softmax are listed for the INT8 modes only.
RYZEN_AI_15_BF16 = "ryzen-ai-documentation docs/ops_support.rst (Ryzen AI 1.5.0, BF16 column)"
RYZEN_AI_BF16_OPS = frozenset({
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "BitShift", "BitwiseAnd",
    "BitwiseNot", "BitwiseOr", "BitwiseXor", "Cast", "Ceil", "Concat", "Constant", "ConstantOfShape", "Conv",
    "ConvTranspose", "CumSum", "DepthToSpace", "Div", "Einsum", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor",
    "Gather", "GatherElements", "Gemm", "GlobalAveragePool", "Greater", "GridSample", "GroupConv", "Identity",
    "InstanceNormalization", "LSTM", "Less", "Log", "MatMul", "Max", "MaxPool", "Min", "Mod", "Mul", "Neg", "Not",
    "Or", "Pad", "Pow", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Reshape", "Resize",
    "Round", "ScatterND", "Shape", "Sigmoid", "Sign", "Sin", "Size", "Slice", "Split", "Sqrt", "Squeeze", "Sub",
    "Tanh", "Tile", "Transpose", "Unsqueeze", "Upsample", "Where", "Xor",
})

# The INT8 columns of the same Ryzen AI 1.5.0 table (XINT8, A8W8, A16W8: the presets of `quantize-encoder`). The
# Vitis AI 6.2 table above was cut off after "Sin" when retrieved, so ops after it (Slice, Sub, Tanh, ...) were
# missing from this project's lists and a step graph's Sub was reported off the NPU; this table lists Sub for all
# three presets.
RYZEN_AI_15_INT8 = "ryzen-ai-documentation docs/ops_support.rst (Ryzen AI 1.5.0, the preset's INT8 column)"
_ALL_THREE = {  # a "Y" in all three INT8 columns
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
    "DepthToSpace", "DequantizeLinear", "Div", "Expand", "Flatten", "Gelu", "Gemm", "GlobalAveragePool",
    "GlobalMaxPool", "GroupNormalization", "Identity", "InstanceNormalization", "LeakyRelu", "MatMul", "Max",
    "MaxPool", "Min", "Mul", "Pad", "Reciprocal", "ReduceMax", "Relu", "Reshape", "Shape", "Slice", "Softmax", "Sqrt",
    "Squeeze", "Sub", "Transpose", "Unsqueeze", "Upsample",
}
RYZEN_AI_15_INT8_OPS = {
    "xint8": frozenset(_ALL_THREE | {
        "Abs", "And", "ArgMax", "ArgMin", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "Cast",
        "Ceil", "Celu", "CumSum", "Elu", "Equal", "Erf", "Floor", "Greater", "GreaterOrEqual",
        "HardSwish", "LayerNormalization", "Less", "LessOrEqual", "Log", "Mish", "Neg", "Or", "Pow", "Range",
        "ReduceMean", "ReduceMin", "ReduceSum", "Resize", "Round", "STFT", "Shrink", "Sign", "Softsign", "Tanh",
        "ThresholdedRelu", "Tile", "TopK", "Where"}),
    "a8w8": frozenset(_ALL_THREE | {
        "ConvTranspose", "Cos", "HardSigmoid", "HardSwish", "QLinearConv", "QLinearMatMul", "QuantizeLinear",
        "ReduceMean", "ReduceMin", "ReduceSum", "Resize", "Sigmoid", "Sin"}),
    "a16w8": frozenset(_ALL_THREE | {
        "ConvTranspose", "Cos", "Elu", "Exp", "GatherElements", "QLinearConv", "QuantizeLinear", "Sigmoid", "Sin",
        "Split", "Tanh", "TopK", "Where"}),
}

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
QDQ_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})
CONV_ATTRIBUTES = ("strides", "pads", "dilations", "kernel_shape", "group")


@dataclass
class NpuOpReport:
    op_counts: dict[str, int]                       # "domain:Op" for non-standard domains, else "Op"
    sources: dict[str, list[str]]                   # op -> which documented lists include it
    not_listed: list[str]                           # ops in no list: these run on the CPU even on an APU
    conv_rank: dict[str, int] = field(default_factory=dict)   # "1d"/"2d" -> Conv count
    conv_default_attributes: list[str] = field(default_factory=list)
    # nodes deliberately left in float (a step graph's bounds-mask arithmetic and state slicing): the EP places
    # them on the CPU or computes them in float; they are bookkeeping and data movement, not signal arithmetic
    float_nodes: dict[str, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Every compute op is documented for INT8 (the Conv-attribute finding is advisory: one third-party report)."""
        return not self.not_listed

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "op_counts": self.op_counts, "not_listed": self.not_listed,
                "listed_by": self.sources, "conv_kernels": self.conv_rank,
                "conv_default_attributes": self.conv_default_attributes, "float_nodes": self.float_nodes,
                "sources": [RYZEN_AI_MODELCOMPAT, VITIS_AI_62_INT8, RYZEN_AI_15_INT8]}

    def lines(self) -> list[str]:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.op_counts.items()))
        out = [f"ops in the quantized graph: {ops}"]
        if self.not_listed:
            out.append(f"not in the Vitis AI EP INT8 op lists (would run on the CPU): {', '.join(self.not_listed)}")
        else:
            out.append("every compute op is in a documented Vitis AI EP INT8 op list")
        partial = sorted(op for op, src in self.sources.items() if len(src) == 1)
        if partial:
            out.append("listed by one source only: " + ", ".join(f"{op} ({self.sources[op][0].split()[0]})"
                                                                 for op in partial))
        if self.float_nodes:
            kept = ", ".join(f"{op} x{n}" for op, n in sorted(self.float_nodes.items()))
            out.append(f"left in float on purpose (bounds masks, state slicing; {sum(self.float_nodes.values())} "
                       f"nodes): {kept}")
        if self.conv_default_attributes:
            out.append(f"Conv nodes relying on default attributes: {', '.join(self.conv_default_attributes[:5])}")
        return out


def _conv_rank(node: Any, weight_ranks: dict[str, int]) -> str | None:
    """"1d"/"2d" from kernel_shape, else from the weight initializer's rank (a DQ'd weight: its DQ input's)."""
    for attr in node.attribute:
        if attr.name == "kernel_shape":
            return f"{len(attr.ints)}d"
    rank = weight_ranks.get(node.input[1]) if len(node.input) > 1 else None
    return f"{rank - 2}d" if rank else None


@dataclass
class Bf16OpReport:
    """An FP32 graph against the BF16 operator list: what would leave the NPU when compiled to BF16."""

    op_counts: dict[str, int]
    not_listed: list[str]

    @property
    def ready(self) -> bool:
        return not self.not_listed

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "op_counts": self.op_counts, "not_listed": self.not_listed,
                "sources": [RYZEN_AI_15_BF16]}

    def lines(self) -> list[str]:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.op_counts.items()))
        if self.not_listed:
            return [f"ops in the FP32 graph: {ops}", "not in the Ryzen AI BF16 op list (would run on the CPU): "
                    f"{', '.join(self.not_listed)} (apucodec.calibration.bf16_rewrite replaces "
                    "LeakyRelu/Relu/Gelu)"]
        return [f"ops in the FP32 graph: {ops}", "every op is in the Ryzen AI BF16 op list"]


def check_bf16_ops(model: Any) -> Bf16OpReport:
    """Op types of an FP32 onnx.ModelProto against the Ryzen AI BF16 operator list."""
    return bf16_check_counts(op_counts(model.graph.node))


def op_key(domain: str, op_type: str) -> str:
    return op_type if domain in ("", "ai.onnx") else f"{domain}:{op_type}"


def op_counts(nodes: Iterable[Any]) -> Counter:
    """Nodes per op (op_key's spelling), from anything with `.domain` and `.op_type`: an onnx graph's nodes or
    ONNX Runtime's node record, so quantization and doctor count ops the same way."""
    return Counter(op_key(node.domain, node.op_type) for node in nodes)


def bf16_check_counts(counts: dict[str, int]) -> Bf16OpReport:
    """The BF16 check from op-type counts (e.g. from ONNX Runtime's node record, where onnx is not installed)."""
    return Bf16OpReport(dict(sorted(counts.items())), sorted(op for op in counts if op not in RYZEN_AI_BF16_OPS))


def int8_sources(op: str, preset: str | None = None) -> list[str]:
    """The documented INT8 lists that include `op` (the Ryzen AI 1.5 table by the graph's preset; XINT8 when the
    preset is unknown, the NPU's own preset and the default)."""
    column = RYZEN_AI_15_INT8_OPS.get((preset or "xint8").lower(), RYZEN_AI_15_INT8_OPS["xint8"])
    return [name for name, ops in ((RYZEN_AI_MODELCOMPAT, RYZEN_AI_OPS), (VITIS_AI_62_INT8, VITIS_AI_62_INT8_OPS),
                                   (RYZEN_AI_15_INT8, column)) if op in ops]


def int8_check_counts(counts: dict[str, int], preset: str | None = None) -> NpuOpReport:
    """The INT8 op-list check from op-type counts (Q/DQ markers skipped; no Conv-attribute finding)."""
    compute = {op: n for op, n in counts.items() if op.rsplit(":", 1)[-1] not in QDQ_OPS}
    sources = {op: int8_sources(op, preset) for op in compute}
    return NpuOpReport(dict(sorted(compute.items())), sources, sorted(op for op, src in sources.items() if not src))


def check_npu_ops(model: Any, float_nodes: Sequence[str] = (), preset: str | None = None) -> NpuOpReport:
    """Op types of an onnx.ModelProto against the documented Vitis AI EP INT8 op lists; `float_nodes` are names of
    nodes left unquantized on purpose, counted apart."""
    kept = set(float_nodes)
    floats: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    conv_rank: Counter[str] = Counter()
    defaults = []
    weight_ranks = {init.name: len(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in weight_ranks:
            weight_ranks[node.output[0]] = weight_ranks[node.input[0]]
        if node.op_type in QDQ_OPS and node.domain in QDQ_DOMAINS:
            continue
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        if node.name in kept:
            floats[key] += 1
            continue
        counts[key] += 1
        if node.op_type == "Conv":
            rank = _conv_rank(node, weight_ranks)
            if rank:
                conv_rank[rank] += 1
            present = {a.name for a in node.attribute}
            if not all(a in present for a in CONV_ATTRIBUTES):
                defaults.append(node.name or f"Conv#{len(defaults)}")
    sources = {op: int8_sources(op, preset) for op in counts}
    not_listed = sorted(op for op, listed in sources.items() if not listed)
    return NpuOpReport(dict(sorted(counts.items())), sources, not_listed, dict(conv_rank), defaults,
                       dict(sorted(floats.items())))
