"""The pieces under distributed training that need no second process: sharded, resumable data order; items that do
not depend on who draws them; precision selection; the quantizer staying float32 under bf16 autocast; ICNR."""

import dataclasses

import numpy as np
import pytest
import torch

from apucodec.codec.data import SegmentSource
from apucodec.codec.init import icnr_
from apucodec.codec.model import APUCodec
from apucodec.codec.sampling import StepBatches, make_loader
from apucodec.codec.step import resolve_precision
from apucodec.contract.config import CodecConfig, preset
from tests.audio_factory import write_folder


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = write_folder(tmp_path_factory.mktemp("data_audio"), seconds=3.0, count=2, kind="tonal")
    return SegmentSource(folder, 11264, sample_rate=44100, log=lambda m: None)


def test_ranks_shard_each_epoch_disjointly():
    slots, batch, world = 40, 3, 2
    ranks = [StepBatches(slots, batch, rank=r, world_size=world, seed=7) for r in range(world)]
    per_epoch = ranks[0].steps_per_epoch
    assert per_epoch == slots // (batch * world)
    for epoch in range(3):
        seen = [[k for s in range(epoch * per_epoch, (epoch + 1) * per_epoch) for k in r.keys(s)] for r in ranks]
        assert all(key[0] == epoch for keys in seen for key in keys)
        assert not set(seen[0]) & set(seen[1]), "two ranks drew the same item in one epoch"
        assert len(set(seen[0]) | set(seen[1])) == per_epoch * batch * world
    first = ranks[0].keys(0)
    again = StepBatches(slots, batch, rank=0, world_size=world, seed=8).keys(0)
    assert first != again, "the seed does not change the order"


def test_tiny_epochs_wrap_instead_of_failing():
    sampler = StepBatches(3, 4, rank=1, world_size=2, seed=0, start=0, end=5)
    batches = list(sampler)
    assert len(batches) == 5 and all(len(b) == 4 for b in batches)
    assert all(0 <= index < 3 for b in batches for _, index in b)


def test_items_are_the_same_for_any_worker_count_and_resume_point(source):
    straight = list(make_loader(source, 2, seed=3, start=0, end=6))
    resumed = list(make_loader(source, 2, seed=3, start=4, end=6, workers=1))
    assert torch.equal(straight[4], resumed[0]) and torch.equal(straight[5], resumed[1])
    assert straight[0].shape == (2, 1, 11264) and straight[0].dtype == torch.float32
    assert not torch.equal(straight[0], straight[1])
    assert float(straight[0].abs().max()) <= 0.99


def test_precision_choice():
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    with pytest.raises(ValueError):
        resolve_precision("fp16", torch.device("cpu"))


def test_quantizer_stays_float32_under_bf16_autocast():
    torch.manual_seed(0)
    model = APUCodec(preset("tiny")).train()
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 1, 8192)).astype(np.float32) * 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(audio)
    assert out.latent.dtype == torch.bfloat16  # the encoder did run in bf16 ...
    assert out.quantized.dtype == torch.float32  # ... the quantizer did not
    assert model.quantizer.codebooks.dtype == torch.float32 and model.quantizer.ema_sum.dtype == torch.float32


def test_icnr_gives_every_phase_the_same_response():
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose1d(3, 2, 16, stride=8, padding=4)
    constant = torch.ones(1, 3, 20)
    before = conv(constant)[..., 16:-16]  # away from the edges
    assert before.std(dim=-1).max() > 1e-3, "torch's init already had identical phases?"
    icnr_(conv)
    after = conv(constant)[..., 16:-16]
    assert torch.allclose(after, after[..., :1].expand_as(after), atol=1e-6)


def test_upsample_init_option():
    assert CodecConfig().upsample_init == "default"
    with pytest.raises(ValueError, match="upsample_init"):
        dataclasses.replace(CodecConfig(), upsample_init="bilinear")
    torch.manual_seed(0)
    default = APUCodec(preset("tiny"))
    torch.manual_seed(0)
    icnr = APUCodec(dataclasses.replace(preset("tiny"), upsample_init="icnr"))
    assert set(default.state_dict()) == set(icnr.state_dict())  # same architecture, same export
    w = icnr.decoder.blocks[0].upsample.weight  # weight-normalised: g * v / |v| per output... still phase-equal
    stride = preset("tiny").strides[-1]
    assert torch.allclose(w[..., 0], w[..., stride - 1])
