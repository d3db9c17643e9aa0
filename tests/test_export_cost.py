"""FLOP counts of exported graphs: hand-built nodes with known answers, and the manifest against PyTorch's layers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from apucodec.codec.checkpoint import load_checkpoint
from apucodec.export.cost import graph_gflop
from apucodec.model.directory import load_model_dir


def _graph(node: onnx.NodeProto, x_shape: list, weight: np.ndarray, out_shape: list | None) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(weight, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_counts_two_flops_per_multiply_add_over_its_outputs():
    # 3 -> 8 channels, kernel 5, stride 2, 100 samples, pads 2: 50 outputs of 8 channels, 3*5 products each
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[5], strides=[2], pads=[2, 2])
    model = _graph(node, [1, 3, 100], np.zeros((8, 3, 5), np.float32), None)
    assert graph_gflop(model) * 1e9 == pytest.approx(2 * 8 * 50 * 3 * 5)


def test_grouped_conv_transpose_counts_its_inputs_scatter():
    # ConvTranspose weight [C_in, C_out/group, k]: each of 4*10 inputs scatters into 3*6 outputs
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[6], strides=[3], group=2)
    model = _graph(node, [1, 4, 10], np.zeros((4, 3, 6), np.float32), None)
    assert graph_gflop(model) * 1e9 == pytest.approx(2 * 4 * 10 * 3 * 6)


def test_matmul_and_dynamic_shapes():
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    assert graph_gflop(_graph(node, [7, 16], np.zeros((16, 5), np.float32), None)) * 1e9 == 2 * 7 * 5 * 16
    assert graph_gflop(_graph(node, ["n", 16], np.zeros((16, 5), np.float32), None)) is None  # unknown length


def _layer_gflop(codec, samples: int, with_transpose_cache: bool) -> dict[str, float]:
    """Conv/ConvTranspose FLOPs of the whole-file PyTorch encoder on `samples` and decoder on its latent, counted by
    forward hooks; with `with_transpose_cache`, plus the previous input frames each transposed conv of a step graph
    keeps for its overlap-add (ceil(kernel / stride) - 1 of them, see apucodec/export/streaming.py)."""
    counted = {"encoder": 0, "decoder": 0}

    def hook(stage):
        def count(module, inputs, output):
            if isinstance(module, torch.nn.ConvTranspose1d):
                per_input = 2 * module.out_channels // module.groups * module.kernel_size[0]
                cache = -(-module.kernel_size[0] // module.stride[0]) - 1 if with_transpose_cache else 0
                counted[stage] += per_input * (inputs[0].numel() + cache * module.in_channels)
            else:
                counted[stage] += 2 * output.numel() * module.in_channels // module.groups * module.kernel_size[0]
        return count

    handles = [m.register_forward_hook(hook(stage))
               for stage, net in (("encoder", codec.encoder), ("decoder", codec.decoder))
               for m in net.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]
    try:
        with torch.no_grad():
            latent = codec.encoder(torch.zeros(1, 1, samples))
            codec.decoder(torch.zeros_like(latent))
    finally:
        for handle in handles:
            handle.remove()
    return {stage: flops / 1e9 for stage, flops in counted.items()}


def test_step_graph_flops_are_the_whole_file_layers_per_step_frames(tiny_model_dir, tiny_checkpoint):
    """A step graph of S frames does the whole-file network's work for S frames, recomputing nothing: the encoder
    exactly, the decoder plus only its transposed convolutions' carried input frames."""
    model_dir = load_model_dir(tiny_model_dir)
    codec = load_checkpoint(tiny_checkpoint).model.eval()
    hop = model_dir.hop
    for step in model_dir.step_sizes("encoder"):
        plain = _layer_gflop(codec, step * hop, with_transpose_cache=False)
        stepped = _layer_gflop(codec, step * hop, with_transpose_cache=True)
        manifest = {stage: model_dir.step_graph(stage, step).role for stage in ("encoder", "decoder")}
        encoder = model_dir.files[manifest["encoder"]].graph.gflop
        decoder = model_dir.files[manifest["decoder"]].graph.gflop
        assert encoder == pytest.approx(plain["encoder"], rel=1e-9) and encoder > 0
        assert decoder == pytest.approx(stepped["decoder"], rel=1e-9) and decoder > plain["decoder"]
