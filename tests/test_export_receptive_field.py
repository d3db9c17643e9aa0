"""The receptive field: computed by hand for a small net, matched by the probes, and really the context needed."""

from __future__ import annotations

import pytest
import torch

from apucodec.codec.config import CodecConfig, preset
from apucodec.codec.model import APUCodec
from apucodec.export.folding import fold_weight_norm
from apucodec.export.probe import probe_decoder, probe_encoder
from apucodec.export.receptive_field import receptive_field
from apucodec.export.specs import graph_specs
from apucodec.export.stitching import check_stitching
from apucodec.model_dir import WindowGeometry, load_model_dir
from tests.export_helpers import torch_threads

# stem k7 | res k3 d1, k1 | down k4 s2 p1 | out k3, hop 2
ONE_BLOCK = CodecConfig(channels=(2, 2), strides=(2,), latent_dim=2, residual_kernel=3, dilations=(1,),
                        activation="leaky_relu", n_codebooks=1, codebook_size=4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def test_hand_computed_receptive_field():
    # encoder, backwards from latent frame 0: out conv [-1, 1]; downsample [-1*2-1, 1*2-1+3] = [-3, 4];
    # k1 [-3, 4]; k3 [-4, 5]; stem k7 [-7, 8] samples.
    # context at each conv input (positions per frame r): out conv r=1 -> 1; downsample/k1 r=2 -> ceil(3/2)=2;
    # k3 r=2 -> 2; stem r=2 -> ceil(7/2)=4 and ceil(9/2)-1=4.
    field = receptive_field(ONE_BLOCK)
    assert (field.encoder.lo, field.encoder.hi, field.encoder.context_frames) == (-7, 8, 4)
    assert (field.encoder.left, field.encoder.right) == (7, 7)
    # decoder, backwards from the 2 samples of frame 0: stem k7 [-3, 4]; k1 [-3, 4]; k3 [-4, 5];
    # transpose k4 s2 p1 -> frames [ceil((-4+1-3)/2), floor((5+1)/2)] = [-3, 3]; in conv k3 -> [-4, 4]
    assert (field.decoder.lo, field.decoder.hi) == (-4, 4)
    assert field.context_frames == max(field.encoder.context_frames, field.decoder.context_frames)


@pytest.mark.parametrize("cfg", [ONE_BLOCK, preset("tiny")], ids=["one_block", "tiny"])
def test_probes_see_exactly_the_computed_interval(cfg):
    torch.manual_seed(0)
    model = APUCodec(cfg).eval()
    field = receptive_field(cfg)
    encoder, _ = fold_weight_norm(model.encoder, cfg)
    decoder, _ = fold_weight_norm(model.decoder, cfg)
    enc = probe_encoder(encoder, field.encoder, cfg.hop_length, cfg.sample_rate)
    dec = probe_decoder(decoder, field.decoder, cfg.latent_dim, cfg.hop_length)
    for result in (enc, dec):
        assert result.exact and result.within and not result.global_reach, result


def test_groupnorm_probe_reports_a_global_reach():
    cfg = CodecConfig(channels=(2, 2), strides=(2,), latent_dim=2, residual_kernel=3, dilations=(1,), norm="group",
                      n_codebooks=1, codebook_size=4)
    model = APUCodec(cfg).eval()
    field = receptive_field(cfg)
    assert field.pooled
    encoder, _ = fold_weight_norm(model.encoder, cfg)
    assert probe_encoder(encoder, field.encoder, cfg.hop_length, cfg.sample_rate).global_reach


def test_stitching_needs_the_full_context(tiny_model_dir, tiny_checkpoint):
    """Same graphs, same window, less context kept: the interior no longer matches the whole file. (With random
    weights the outer taps contribute little, so the context must shrink well below the field to show it.)"""
    from apucodec.codec.checkpoint import load_checkpoint

    md = load_model_dir(tiny_model_dir)
    model = load_checkpoint(tiny_checkpoint).model
    field = receptive_field(model.config)
    specs = {s.role: s for s in graph_specs(model.config, md.geometry)}
    paths = {r: md.path_of(r) for r in ("encoder", "decoder")}
    full = check_stitching(model, specs, paths, md.geometry, field)
    assert full["encoder"].passed and full["decoder"].passed
    short = WindowGeometry(md.geometry.hop, md.geometry.window_frames, 3)
    cut = check_stitching(model, specs, paths, short, field)
    assert not cut["encoder"].passed and not cut["decoder"].passed
