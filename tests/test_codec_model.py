"""The APU-Codec network matches its spec: parameter count, frame arithmetic, lengths, activations."""

import math

import pytest
import torch

from apucodec.codec.model import APUCodec
from apucodec.contract.config import CodecConfig, preset

SPEC_PARAMS = 32_401_793


def test_default_config_parameter_count_matches_spec():
    model = APUCodec()
    assert abs(model.param_count - SPEC_PARAMS) / SPEC_PARAMS < 0.01
    print(f"default config: {model.param_count:,} parameters")


def test_seed_layout_has_exactly_the_seed_parameter_count():
    assert APUCodec(preset("seed")).param_count == SPEC_PARAMS


@pytest.mark.parametrize("samples,frames", [(44100, 86), (88200, 172), (512 * 10, 10)])
def test_frames_per_input_length(samples, frames):
    cfg = CodecConfig()
    assert cfg.hop_length == 512
    assert cfg.frames_for(samples) == frames


def test_tiny_model_shapes_follow_the_frame_arithmetic():
    model = APUCodec(preset("tiny")).eval()
    for samples in (44100, 88200):
        with torch.no_grad():
            latent = model.encoder(torch.randn(1, 1, samples) * 0.1)
            audio = model.decoder(latent)
        frames = model.config.frames_for(samples)
        assert latent.shape == (1, model.config.latent_dim, frames)
        assert audio.shape == (1, 1, frames * 512)


def test_bitrate_of_the_spec():
    cfg = CodecConfig()
    assert cfg.bits_per_code == 11
    assert math.isclose(cfg.bitrate(), 44100 / 512 * 8 * 11)
    assert math.isclose(cfg.bitrate(1), 44100 / 512 * 11)


@pytest.mark.parametrize("activation", ["gelu", "leaky_relu"])
def test_activation_is_configurable(activation):
    model = APUCodec(CodecConfig(channels=(4, 4, 8, 8, 8), activation=activation, latent_dim=8, codebook_size=16))
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("GELU" in kinds) == (activation == "gelu")
    assert ("LeakyReLU" in kinds) == (activation == "leaky_relu")


def test_config_round_trips_through_a_dict():
    cfg = preset("small")
    assert CodecConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        CodecConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_causal_config_never_looks_ahead_and_trains():
    """Changing input at sample t moves no output before t (encoder frames, decoder samples), and the causal model
    has the same parameters as the non-causal one (only the padding moves)."""
    torch.manual_seed(0)
    model = APUCodec(preset("tiny-causal")).eval()
    plain = APUCodec(preset("tiny"))
    assert model.param_count == plain.param_count
    audio = torch.randn(1, 1, 16 * 512) * 0.2
    cut = 9 * 512 + 100
    changed = audio.clone()
    changed[..., cut:] += torch.randn(1, 1, audio.shape[-1] - cut)
    with torch.no_grad():
        a, b = model.encoder(audio), model.encoder(changed)
        assert torch.equal(a[..., : cut // 512], b[..., : cut // 512]) and not torch.equal(a, b)
        latent = torch.randn(1, model.config.latent_dim, 16)
        moved = latent.clone()
        moved[..., 10:] += 1.0
        x, y = model.decoder(latent), model.decoder(moved)
        assert torch.equal(x[..., : 10 * 512], y[..., : 10 * 512]) and not torch.equal(x, y)
    model.train()
    out = model(audio)
    (out.audio - audio).abs().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
