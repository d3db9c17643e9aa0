"""Checkpoints: our format round-trips; the seed's bare state dicts load and run; bad files fail in one line."""

import pickle

import pytest
import torch

from apucodec.codec.checkpoint import is_seed_state_dict, load_checkpoint, save_checkpoint
from apucodec.codec.model import APUCodec
from apucodec.contract.config import preset
from apucodec.errors import ApucodecError


def seed_state_dict() -> dict[str, torch.Tensor]:
    """A seed-format state dict with random values: the original training script's key names."""
    model = APUCodec(preset("seed"))
    torch.manual_seed(0)
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("quantizer."):
            continue
        state[key] = torch.randn_like(value) * 0.02 if value.is_floating_point() else value
    for i in range(8):
        state[f"quantizer.codebooks.{i}"] = torch.randn(2048, 128)
    return state


def test_seed_keys_are_the_documented_ones():
    keys = set(seed_state_dict())
    for expected in ("encoder.input_conv.weight", "encoder.blocks.0.res1.conv1.weight",
                     "encoder.blocks.3.res3.norm.bias", "encoder.blocks.2.downsample.weight",
                     "encoder.output_conv.weight", "quantizer.codebooks.7", "decoder.input_conv.weight",
                     "decoder.blocks.0.upsample.weight", "decoder.blocks.3.res2.conv2.bias",
                     "decoder.output_conv.bias"):
        assert expected in keys


def test_seed_state_dict_loads_runs_and_round_trips(tmp_path):
    state = seed_state_dict()
    assert is_seed_state_dict(state)
    path = tmp_path / "seed.pt"
    torch.save(state, path)

    loaded = load_checkpoint(path)
    assert loaded.source_format == "seed"
    model = loaded.model
    assert model.config.norm == "group" and model.config.activation == "gelu"
    assert torch.equal(model.quantizer.codebooks[3], state["quantizer.codebooks.3"])
    audio = torch.sin(torch.arange(8192) / 10.0).view(1, 1, -1) * 0.3
    with torch.no_grad():
        out = model(audio)
    assert out.audio.shape == audio.shape and torch.isfinite(out.audio).all()

    again_path = tmp_path / "ours.pt"
    save_checkpoint(again_path, model, step=7)
    again = load_checkpoint(again_path)
    assert again.source_format == "apucodec" and again.step == 7
    with torch.no_grad():
        assert torch.equal(again.model(audio).audio, out.audio)


def test_our_checkpoint_round_trips_with_weight_norm(tmp_path):
    model = APUCodec(preset("tiny")).eval()
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model, step=3)
    loaded = load_checkpoint(path)
    assert loaded.model.config == model.config
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.model.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    assert not list(tmp_path.glob(".*tmp"))  # the temp file was renamed, not left behind


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("case", ["missing", "directory", "not_torch", "pickle", "wrong_keys", "wrong_shapes"])
def test_bad_checkpoints_fail_with_one_line(tmp_path, case):
    path = tmp_path / "ckpt.pt"
    if case == "directory":
        path.mkdir()
    elif case == "not_torch":
        path.write_text("hello, I am not a checkpoint")
    elif case == "pickle":
        with open(path, "wb") as fh:
            pickle.dump({"config": Evil()}, fh)
    elif case == "wrong_keys":
        torch.save({"foo": torch.zeros(3)}, path)
    elif case == "wrong_shapes":
        model = APUCodec(preset("tiny"))
        state = model.state_dict()
        state["encoder.output_conv.bias"] = torch.zeros(5)
        torch.save({"config": model.config.to_dict(), "state_dict": state, "step": 0}, path)
    with pytest.raises(ApucodecError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
