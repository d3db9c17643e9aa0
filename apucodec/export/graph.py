"""torch module -> ONNX ModelProto -> simplified -> checked, for one GraphSpec.

Exporter choice: the TorchScript-based exporter (`dynamo=False`). It emits opset 17 natively, with static shapes,
as plain Conv / ConvTranspose / LeakyRelu or Erf-based GELU nodes. torch 2.13's default dynamo exporter only has
opset-18+ implementations and reaches 17 through onnx's version converter (a second, lossy-prone translation), is
~5x slower on these graphs and floods stdout. The dynamo exporter is used only when the TorchScript one is gone
(a future torch), and the manifest records which ran.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import onnx
import torch
from torch import nn

from apucodec.errors import ApucodecError, first_line
from apucodec.export.specs import GraphSpec


def to_onnx(module: nn.Module, spec: GraphSpec, opset: int) -> tuple[onnx.ModelProto, str]:
    """Trace `module` on static batch-1 examples of the spec's inputs; returns the model and the exporter's name."""
    example = tuple(torch.zeros(t.shape, dtype=torch.float32) for t in spec.inputs)
    names = {"input_names": [t.name for t in spec.inputs], "output_names": [t.name for t in spec.outputs]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices are not the user's problem
        try:
            buffer = io.BytesIO()
            torch.onnx.export(module, example, buffer, dynamo=False, opset_version=opset,
                              do_constant_folding=True, **names)
            return onnx.load_from_string(buffer.getvalue()), "torch.onnx (TorchScript)"
        except (TypeError, NotImplementedError, AttributeError):
            program = torch.onnx.export(module, example, dynamo=True, opset_version=opset, verbose=False,
                                        **names)
            return program.model_proto, "torch.onnx (dynamo)"


# onnxsim passes that undo deliberate numerics: fusing consecutive ReduceMeans turns MultiLevelGroupNorm's staged
# means (see folding.py) back into one long float32 sum in ORT (measured: 125 dB -> 93 dB parity on a GroupNorm model).
# And passes that hide patterns ONNX Runtime fuses: folding GELU's trailing "* 0.5" into the next Conv's weights
# leaves x * (1 + erf(x / sqrt 2)), which ORT can no longer fuse into one Gelu kernel (13 of 29 GELUs of the default
# encoder stayed as Div/Erf/Add/Mul; with them fused: 4 % lower pipeline RTF in apucodec bench), and it turns those
# Conv weights into Constant nodes, which the Conv2d rewrite of quantize-encoder --conv2d does not accept.
SKIPPED_SIMPLIFIER_PASSES = ["fuse_consecutive_reduce", "fuse_preceding_mul_into_conv"]


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """onnxsim if importable (the documented tool), else onnxslim; returns the model and 'tool version'."""
    try:
        import onnxsim
    except ImportError:
        onnxsim = None
    if onnxsim is not None:
        simplified, ok = onnxsim.simplify(model, skipped_optimizers=SKIPPED_SIMPLIFIER_PASSES)
        if not ok:
            raise ApucodecError("onnxsim could not verify its simplified graph; rerun export with --no-simplify")
        return simplified, f"onnxsim {getattr(onnxsim, '__version__', '?')}"
    try:
        import onnxslim
    except ImportError:
        raise ApucodecError("neither onnxsim nor onnxslim is installed; install apucodec[export] or pass "
                            "--no-simplify") from None
    return onnxslim.slim(model), f"onnxslim {getattr(onnxslim, '__version__', '?')}"


def _static_shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]


def check(model: onnx.ModelProto, spec: GraphSpec, opset: int) -> None:
    """onnx.checker with full checks (incl. strict shape inference), plus the spec's names, static shapes, opset."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ApucodecError(f"{spec.filename}: onnx.checker rejected the exported graph "
                            f"({first_line(exc)})") from None
    found = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    if found.get("ai.onnx") != opset:
        raise ApucodecError(f"{spec.filename}: exported at opset {found.get('ai.onnx')}, expected {opset}")
    for kind, expected, actual in (("input", spec.inputs, model.graph.input), ("output", spec.outputs,
                                                                               model.graph.output)):
        got = [(v.name, _static_shape(v)) for v in actual]
        want = [(t.name, list(t.shape)) for t in expected]
        if got != want:
            raise ApucodecError(f"{spec.filename}: graph {kind}s are {got}, expected {want} (static, batch 1)")


def node_summary(model: onnx.ModelProto) -> dict[str, Any]:
    """{'nodes': total, 'ops': {op_type: count}} of an exported graph, for the manifest's graph facts."""
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"nodes": len(model.graph.node), "ops": dict(sorted(ops.items()))}
