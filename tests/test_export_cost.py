"""FLOP counts of exported graphs: hand-built nodes with known answers, and the manifest against PyTorch's layers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from apucodec.codec.checkpoint import load_checkpoint
from apucodec.export.cost import graph_gflop
from apucodec.model_dir import load_model_dir


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


def test_manifest_flops_match_pytorchs_layers_on_one_window(tiny_model_dir, tiny_checkpoint):
    model_dir = load_model_dir(tiny_model_dir)
    codec = load_checkpoint(tiny_checkpoint).model.eval()
    counted = {"encoder": 0, "decoder": 0}

    def hook(stage):
        def count(module, inputs, output):
            if isinstance(module, torch.nn.ConvTranspose1d):
                counted[stage] += 2 * inputs[0].numel() * module.out_channels // module.groups * module.kernel_size[0]
            else:
                counted[stage] += 2 * output.numel() * module.in_channels // module.groups * module.kernel_size[0]
        return count

    handles = [m.register_forward_hook(hook(stage))
               for stage, net in (("encoder", codec.encoder), ("decoder", codec.decoder))
               for m in net.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]
    geometry = model_dir.geometry
    with torch.no_grad():
        latent = codec.encoder(torch.zeros(1, 1, geometry.window_samples))
        codec.decoder(torch.zeros_like(latent))
    for handle in handles:
        handle.remove()
    for stage in ("encoder", "decoder"):
        assert model_dir.files[stage]["graph"]["gflop"] * 1e9 == pytest.approx(counted[stage], rel=1e-9)
        assert counted[stage] > 0
