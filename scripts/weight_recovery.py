"""Weights back out of exported graphs: a plain-convolution ONNX encoder/decoder -> the torch modules they came from.

A one-off migration tool (scripts/recover_bundled_model.py runs it), kept out of the package: no command and no
library code needs it.

Why: a model directory may outlive its PyTorch checkpoint (the bundled default model was trained elsewhere and
only its graphs were kept). After weight-norm folding an exported graph is nothing but Conv/ConvTranspose nodes
with their weights as initializers, joined by LeakyReLU/GELU, Add and a final Tanh, so the effective weights are
all there. Loaded into a network built with norm="none" (plain convolutions with the same effective weights),
they give back a module that computes what the graph computes, and that can be exported again in any newer form.

The mapping is by order: the graph's convolution nodes in topological order against the module's convolutions in
registration order (input_conv, blocks.N.res1.conv1, ...), which is the order the exporter traced them in. Nothing is
trusted by name alone: every node's op type, weight and bias shapes, stride, padding, dilation and group count
must match its module, and a graph with any other operator (a GroupNorm, an unfolded weight norm, a quantized
node) is refused, because its weights would not be the whole story. Whether the wiring (residual adds, order of
activations) matches too is what `max_output_error` then measures on real audio.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from apucodec.codec.model import APUCodec
from apucodec.contract.config import CodecConfig
from apucodec.dsp.metrics import snr_db
from apucodec.errors import ApucodecError

CONV_OPS = ("Conv", "ConvTranspose")
# The other operators of a folded leaky_relu APU-Codec graph: none carries weights (LeakyRelu's slope is checked).
WEIGHTLESS_OPS = ("Add", "Tanh")
LEAKY_SLOPE = 0.1


@dataclass
class GraphConv:
    """One convolution node of a graph: its op, weights and attributes (ONNX defaults filled in)."""

    name: str
    op_type: str
    weight: np.ndarray
    bias: np.ndarray | None
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    group: int
    output_padding: tuple[int, ...]


def _initializers(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}


def graph_convs(proto: onnx.ModelProto, label: str) -> list[GraphConv]:
    """The convolution nodes of `proto` in graph order, refusing graphs whose weights are not all in them."""
    inits = _initializers(proto)
    convs = []
    for node in proto.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in CONV_OPS:
            weight_name = node.input[1]
            bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
            if weight_name not in inits or (bias_name is not None and bias_name not in inits):
                raise ApucodecError(f"{label}: node {node.name or node.op_type} takes its weights from another node, "
                                    "not an initializer (weight norm not folded?); cannot recover them")
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ApucodecError(f"{label}: node {node.name} uses auto_pad; only explicit pads are supported")
            weight = inits[weight_name]
            dims = weight.ndim - 2
            convs.append(GraphConv(
                name=weight_name, op_type=node.op_type, weight=weight,
                bias=inits[bias_name] if bias_name else None,
                strides=tuple(attrs.get("strides", [1] * dims)), pads=tuple(attrs.get("pads", [0] * 2 * dims)),
                dilations=tuple(attrs.get("dilations", [1] * dims)), group=int(attrs.get("group", 1)),
                output_padding=tuple(attrs.get("output_padding", [0] * dims))))
        elif node.op_type == "LeakyRelu":
            if not np.isclose(attrs.get("alpha", 0.01), LEAKY_SLOPE):
                raise ApucodecError(f"{label}: LeakyRelu slope {attrs.get('alpha', 0.01)} is not the codec's "
                                    f"{LEAKY_SLOPE}")
        elif node.op_type not in WEIGHTLESS_OPS:
            raise ApucodecError(f"{label}: operator {node.op_type} is not part of a folded plain-convolution "
                                "APU-Codec graph; its weights cannot be recovered")
    return convs


def module_convs(module: nn.Module, in_channels: int, hop: int) -> list[tuple[str, nn.Module]]:
    """The module's (transposed) convolutions in the order its forward pass calls them (the order the exporter
    traced them in; not registration order: a DecoderBlock registers its residual units before its upsampler),
    with their state-dict prefixes. Found by running it once on a short input with forward hooks."""
    convs = {sub: name for name, sub in module.named_modules() if isinstance(sub, nn.Conv1d | nn.ConvTranspose1d)}
    order: list[tuple[str, nn.Module]] = []
    hooks = [sub.register_forward_hook(lambda sub, _in, _out: order.append((convs[sub], sub))) for sub in convs]
    try:
        with torch.no_grad():
            module(torch.zeros(1, in_channels, 4 * hop))
    finally:
        for hook in hooks:
            hook.remove()
    if sorted(name for name, _ in order) != sorted(convs.values()):
        raise ApucodecError(f"{type(module).__name__}: its forward pass does not call each convolution exactly once")
    return order


def _mismatch(conv: GraphConv, name: str, module: nn.Module) -> str | None:
    """Why graph node `conv` cannot be module `name`, or None when op, shapes and attributes all agree."""
    expected_op = "ConvTranspose" if isinstance(module, nn.ConvTranspose1d) else "Conv"
    padding = int(module.padding[0])
    checks = [
        ("op", conv.op_type, expected_op),
        ("weight shape", conv.weight.shape, tuple(module.weight.shape)),
        ("bias shape", None if conv.bias is None else conv.bias.shape,
         None if module.bias is None else tuple(module.bias.shape)),
        ("strides", conv.strides, tuple(module.stride)),
        ("pads", conv.pads, (padding, padding)),
        ("dilations", conv.dilations, tuple(module.dilation)),
        ("group", conv.group, module.groups),
        ("output_padding", conv.output_padding,
         tuple(module.output_padding) if isinstance(module, nn.ConvTranspose1d) else conv.output_padding),
    ]
    for what, found, expected in checks:
        if found != expected:
            return f"{what} {found} != {expected}"
    return None


def load_graph_weights(module: nn.Module, proto: onnx.ModelProto, label: str, in_channels: int,
                       hop: int) -> list[str]:
    """Copy every convolution's weights from `proto` into `module` (a norm='none' Encoder or Decoder), in order;
    return the graph's initializer names whose node order and module name disagree (informational: names are not
    required to survive an export, order is)."""
    convs = graph_convs(proto, label)
    targets = module_convs(module, in_channels, hop)
    if len(convs) != len(targets):
        raise ApucodecError(f"{label}: {len(convs)} convolutions in the graph, {len(targets)} in the "
                            f"{type(module).__name__} of this config")
    renamed = []
    with torch.no_grad():
        for conv, (name, target) in zip(convs, targets, strict=True):
            problem = _mismatch(conv, name, target)
            if problem:
                raise ApucodecError(f"{label}: graph convolution {conv.name} does not fit {name}: {problem}")
            target.weight.copy_(torch.from_numpy(conv.weight.astype(np.float32)))
            if target.bias is not None:
                target.bias.copy_(torch.from_numpy(conv.bias.astype(np.float32)))
            if conv.name != f"{name}.weight":
                renamed.append(conv.name)
    return renamed


def recover_codec(encoder: onnx.ModelProto, decoder: onnx.ModelProto, codebooks: np.ndarray,
                  config: CodecConfig) -> tuple[APUCodec, dict[str, Any]]:
    """An APUCodec (norm='none', eval mode) carrying the graphs' convolution weights and `codebooks`; and what was
    mapped (for the record)."""
    if config.norm == "group":
        raise ApucodecError("a GroupNorm model cannot be recovered from its graphs (its norms are not convolutions)")
    if config.activation != "leaky_relu" or config.causal:
        raise ApucodecError("only non-causal leaky_relu models are supported (GELU and causal padding export as "
                            "extra nodes this mapping does not read)")
    plain = dataclasses.replace(config, norm="none")
    model = APUCodec(plain)
    renamed = {"encoder": load_graph_weights(model.encoder, encoder, "encoder graph", 1, config.hop_length),
               "decoder": load_graph_weights(model.decoder, decoder, "decoder graph", config.latent_dim, 1)}
    expected = tuple(model.quantizer.codebooks.shape)
    if tuple(codebooks.shape) != expected:
        raise ApucodecError(f"codebooks: shape {tuple(codebooks.shape)} != {expected} of the config")
    books = torch.from_numpy(np.asarray(codebooks, dtype=np.float32))
    state = {"codebooks": books, "ema_sum": books.clone(), "ema_count": torch.ones(expected[:2]),
             "initialized": torch.tensor(True)}
    model.quantizer.load_state_dict(state, strict=True)
    model.eval()
    facts = {stage: {"convolutions": sum(isinstance(m, nn.Conv1d | nn.ConvTranspose1d)
                                         for m in getattr(model, stage).modules()),
                     "parameters": sum(p.numel() for p in getattr(model, stage).parameters()),
                     "names_differing_from_modules": renamed[stage]} for stage in ("encoder", "decoder")}
    return model, facts


def compare_with_graphs(model: APUCodec, encoder: onnx.ModelProto, decoder: onnx.ModelProto,
                        audio: np.ndarray) -> dict[str, dict[str, float]]:
    """Run one window of `audio` (exactly the graphs' static input length) through the graphs on ORT's CPU EP and
    through the recovered torch modules: max abs error and SNR per stage. The decoder's input is the window's own
    quantized latent (all codebooks), the distribution it sees in use."""
    import onnxruntime as ort

    from apucodec.runtime.eps import CPU
    from apucodec.runtime.ort_options import session_options
    from apucodec.runtime.stage_plan import SessionSettings

    options = session_options(SessionSettings(spin=True))
    sessions = {stage: ort.InferenceSession(proto.SerializeToString(), options, providers=[CPU])
                for stage, proto in (("encoder", encoder), ("decoder", decoder))}
    x = np.asarray(audio, dtype=np.float32).reshape(1, 1, -1)
    enc = sessions["encoder"]
    expected = enc.get_inputs()[0].shape[-1]
    if isinstance(expected, int) and x.shape[-1] != expected:
        raise ApucodecError(f"encoder graph: takes {expected} samples, the comparison window has {x.shape[-1]}")
    with torch.no_grad():
        latent_torch = model.encoder(torch.from_numpy(x))
        codes = model.quantizer.quantize_codes(latent_torch)
        quantized = model.quantizer.dequantize(codes)
        audio_torch = model.decoder(quantized).numpy()
    latent_graph = enc.run(None, {enc.get_inputs()[0].name: x})[0]
    dec = sessions["decoder"]
    audio_graph = dec.run(None, {dec.get_inputs()[0].name: quantized.numpy()})[0]
    result = {}
    for stage, graph_out, torch_out in (("encoder", latent_graph, latent_torch.numpy()),
                                        ("decoder", audio_graph, audio_torch)):
        if graph_out.shape != torch_out.shape:
            raise ApucodecError(f"{stage} graph: output shape {graph_out.shape} != torch {torch_out.shape}")
        result[stage] = {"max_abs_error": float(np.max(np.abs(graph_out.astype(np.float64) - torch_out))),
                         "snr_db": round(snr_db(graph_out, torch_out), 2),
                         "peak": float(np.max(np.abs(graph_out)))}
    return result
