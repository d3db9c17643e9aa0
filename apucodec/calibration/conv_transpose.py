"""Rewrite 1-D ConvTranspose as a polyphase Conv, which ONNX Runtime's CPU EP runs as an integer kernel.

Why: ORT quantizes a ConvTranspose into DQ -> ConvTranspose -> Q, but on x86 it has no integer ConvTranspose
kernel, so the node stays float and the layout pass wraps each one in NHWC<->NCHW Transposes (measured on the
bundled decoder: 4 float ConvTranspose and 28 Transposes left in the optimized INT8 graph, while every Conv became
a QLinearConv). That is why the decoder gained less from INT8 than the encoder.

The rewrite is exact (same multiply-adds, no zero-stuffing): a stride-s transposed convolution produces s
interleaved output phases, and phase r is an ordinary stride-1 convolution of the input with taps
w[:, :, r], w[:, :, r + s], ... (ceil(k/s) of them). All phases together are one Conv with Cout*s output
channels; Reshape -> Transpose -> Reshape interleaves them, and a Slice removes what the transposed conv's
padding removes. With the decoder's usual k = 2s the phase convs have 2 taps, and the work equals the original's.
Only the plain form is rewritten (1-D, group 1, dilation 1, explicit pads, no output_shape); others stay as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apucodec.errors import require

INT64_MAX = np.iinfo(np.int64).max


def _attrs(node: Any) -> dict[str, Any]:
    helper = require("onnx.helper", "quantize")
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _plain(node: Any, weights: dict[str, np.ndarray]) -> bool:
    attrs = _attrs(node)
    weight = weights.get(node.input[1]) if len(node.input) > 1 else None
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    return (weight is not None and weight.ndim == 3 and attrs.get("group", 1) == 1
            and list(attrs.get("dilations", [1])) == [1] and "output_shape" not in attrs
            and auto_pad in (b"NOTSET", "NOTSET")
            and (len(node.input) < 3 or not node.input[2] or node.input[2] in weights))


def polyphase_weights(weight: np.ndarray, bias: np.ndarray | None, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """ConvTranspose weight [Cin, Cout, k] (+ bias [Cout]) -> Conv weight [Cout*s, Cin, Q] and bias [Cout*s].

    Output channel co*s + r holds phase r of channel co; its taps are w[:, co, (Q-1-u)*s + r] (flipped, because
    Conv correlates where ConvTranspose convolves), zero where that index runs past k.
    """
    c_in, c_out, k = weight.shape
    taps = -(-k // stride)
    padded = np.zeros((c_in, c_out, taps * stride), dtype=weight.dtype)
    padded[:, :, :k] = weight
    phases = padded.reshape(c_in, c_out, taps, stride)[:, :, ::-1, :]          # [Cin, Cout, Q (flipped), s]
    conv = np.ascontiguousarray(phases.transpose(1, 3, 0, 2).reshape(c_out * stride, c_in, taps))
    b = np.zeros(c_out, dtype=weight.dtype) if bias is None else bias
    return conv, np.repeat(b, stride).astype(weight.dtype)


def conv_transpose_to_conv(model: Any) -> tuple[Any, dict[str, list[str]]]:
    """A copy of `model` with every plain 1-D ConvTranspose replaced; returns it and {old node: new node names}."""
    onnx = require("onnx", "quantize")
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    replaced: dict[str, list[str]] = {}
    nodes: list[Any] = []
    used_initializers: set[str] = set()
    for node in graph.node:
        if node.op_type != "ConvTranspose" or not _plain(node, weights):
            nodes.append(node)
            continue
        attrs = _attrs(node)
        weight = weights[node.input[1]]
        bias = weights[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        stride = int(attrs.get("strides", [1])[0])
        c_out, k = weight.shape[1], weight.shape[2]
        pad_begin, pad_end = (list(attrs.get("pads", [0, 0])) + [0, 0])[:2]
        out_pad = int(list(attrs.get("output_padding", [0]))[0])
        conv_w, conv_b = polyphase_weights(weight, bias, stride)
        taps = conv_w.shape[2]
        trim_right = taps * stride - k + pad_end - out_pad
        if trim_right < 0:
            nodes.append(node)
            continue
        base = node.name or node.output[0]
        names = {s: f"{base}/polyphase/{s}" for s in ("w", "b", "conv", "split", "interleave", "join", "trim",
                                                      "split_shape", "join_shape", "starts", "ends", "axes")}
        graph.initializer.extend([
            numpy_helper.from_array(conv_w, names["w"]), numpy_helper.from_array(conv_b, names["b"]),
            numpy_helper.from_array(np.array([0, c_out, stride, -1], np.int64), names["split_shape"]),
            numpy_helper.from_array(np.array([0, c_out, -1], np.int64), names["join_shape"]),
            numpy_helper.from_array(np.array([pad_begin], np.int64), names["starts"]),
            numpy_helper.from_array(np.array([-trim_right if trim_right else INT64_MAX], np.int64), names["ends"]),
            numpy_helper.from_array(np.array([2], np.int64), names["axes"]),
        ])
        phases, split, interleaved, joined = (f"{base}/polyphase/{s}_out" for s in ("conv", "split", "interleave",
                                                                                     "join"))
        new = [
            helper.make_node("Conv", [node.input[0], names["w"], names["b"]], [phases], name=names["conv"],
                             kernel_shape=[taps], strides=[1], pads=[taps - 1, taps - 1], dilations=[1], group=1),
            helper.make_node("Reshape", [phases, names["split_shape"]], [split], name=names["split"]),
            helper.make_node("Transpose", [split], [interleaved], name=names["interleave"], perm=[0, 1, 3, 2]),
            helper.make_node("Reshape", [interleaved, names["join_shape"]], [joined], name=names["join"]),
            helper.make_node("Slice", [joined, names["starts"], names["ends"], names["axes"]], [node.output[0]],
                             name=names["trim"]),
        ]
        nodes.extend(new)
        replaced[node.name] = [n.name for n in new]
        used_initializers.update(node.input[1:])
    if not replaced:
        return out, replaced
    del graph.node[:]
    graph.node.extend(nodes)
    still_used = {name for n in graph.node for name in n.input}
    keep = [i for i in graph.initializer if i.name not in used_initializers or i.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.value_info[:]          # shapes of the rewritten tensors are re-inferred by whoever needs them
    return out, replaced
