"""Weights recovered from plain-convolution graphs (scripts/weight_recovery.py), as the bundled model's were."""

import dataclasses
import importlib.util
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from apucodec.codec.model import APUCodec
from apucodec.contract.config import preset
from apucodec.errors import ApucodecError
from apucodec.export.folding import fold_weight_norm

_spec = importlib.util.spec_from_file_location(
    "weight_recovery", Path(__file__).resolve().parent.parent / "scripts" / "weight_recovery.py")
_recovery = importlib.util.module_from_spec(_spec)
sys.modules["weight_recovery"] = _recovery  # its dataclasses look their module up there
_spec.loader.exec_module(_recovery)
compare_with_graphs, recover_codec = _recovery.compare_with_graphs, _recovery.recover_codec

FRAMES = 8


def _graph(module: torch.nn.Module, channels: int, length: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, channels, length),), buffer, dynamo=False, opset_version=17,
                          do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


@pytest.fixture(scope="module")
def trained():
    """A weight-normalised tiny codec with non-trivial weights, its folded modules and their graphs (one window)."""
    torch.manual_seed(3)
    cfg = preset("tiny")
    model = APUCodec(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    folded = {stage: fold_weight_norm(getattr(model, stage), cfg)[0] for stage in ("encoder", "decoder")}
    graphs = {"encoder": _graph(folded["encoder"], 1, FRAMES * cfg.hop_length),
              "decoder": _graph(folded["decoder"], cfg.latent_dim, FRAMES)}
    return cfg, model, folded, graphs


def test_recovered_weights_equal_the_exported_ones_exactly(trained):
    cfg, model, folded, graphs = trained
    codebooks = model.quantizer.codebooks.numpy().astype(np.float16)
    recovered, facts = recover_codec(graphs["encoder"], graphs["decoder"], codebooks, cfg)
    assert recovered.config.norm == "none"
    for stage in ("encoder", "decoder"):
        expected = folded[stage].state_dict()
        got = getattr(recovered, stage).state_dict()
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), key
        assert facts[stage]["convolutions"] == sum(1 for k in expected if k.endswith(".weight"))
    assert torch.equal(recovered.quantizer.codebooks, torch.from_numpy(codebooks.astype(np.float32)))
    # The decoder's ConvTranspose runs before its block's residual units though registered after them: order is
    # the forward pass's, so a wrong order would have failed the shape checks above or this output comparison.
    audio = np.random.default_rng(0).standard_normal(FRAMES * cfg.hop_length).astype(np.float32) * 0.3
    errors = compare_with_graphs(recovered, graphs["encoder"], graphs["decoder"], audio)
    assert errors["encoder"]["snr_db"] > 100 and errors["decoder"]["snr_db"] > 100


def test_a_graph_of_another_config_is_refused_naming_the_layer(trained):
    cfg, model, _, graphs = trained
    wider = dataclasses.replace(cfg, channels=(4, 8, 16, 32, 32))
    with pytest.raises(ApucodecError, match=r"encoder graph: graph convolution .* does not fit blocks\.2\."):
        recover_codec(graphs["encoder"], graphs["decoder"], model.quantizer.codebooks.numpy(), wider)


def test_a_graph_with_other_operators_or_slopes_is_refused(trained):
    cfg, model, _, graphs = trained
    books = model.quantizer.codebooks.numpy()
    changed = onnx.ModelProto()
    changed.CopyFrom(graphs["decoder"])
    next(n for n in changed.graph.node if n.op_type == "Tanh").op_type = "Sigmoid"
    with pytest.raises(ApucodecError, match="decoder graph: operator Sigmoid"):
        recover_codec(graphs["encoder"], changed, books, cfg)
    changed.CopyFrom(graphs["encoder"])
    relu = next(n for n in changed.graph.node if n.op_type == "LeakyRelu")
    next(a for a in relu.attribute if a.name == "alpha").f = 0.2
    with pytest.raises(ApucodecError, match="LeakyRelu slope"):
        recover_codec(changed, graphs["decoder"], books, cfg)
