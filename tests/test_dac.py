"""DAC family without the reference package: our DAC export streams exactly and the NumPy RVQ with projections
gives the torch model's codes.

A tiny DAC config (hop 40, an odd stride, 3 x 32 codes of dim 4) is saved in DAC's checkpoint format and exported
through `export_model(path)`; then `run` through the step graphs equals the whole-file torch model at every sample
(streamed latents vs the whole-file encoder, streamed audio vs the whole-file decoder on the same codes), the
runtime's codes equal `DacModel.encode`'s, and the model directory's projections file is checked like the rest.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apucodec.contract.dac_config import DacConfig
from apucodec.contract.families import codebook_shape, config_from_codec
from apucodec.errors import ApucodecError
from apucodec.model.rvq_projections import load_projections
from apucodec.runtime.codec_runner import CodecEngine
from tests.dac_models import TINY_DAC_KWARGS, save_dac_checkpoint, tiny_dac
from tests.runtime_models import CPU_ONLY

# Torch on one thread: faster on a shared 2-core box, and the reference codes do not depend on how many threads
# an earlier test left torch with (a near-tie in the codebook search can flip with the summation order).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

torch = pytest.importorskip("torch")

STEPS = (4, 16)
HOP = 40


@pytest.fixture(scope="module")
def dac_export(tmp_path_factory):
    from apucodec.export import export_model

    folder = tmp_path_factory.mktemp("dac")
    model = tiny_dac(seed=5)
    checkpoint = save_dac_checkpoint(model, folder / "weights.pth")
    export_model(checkpoint, folder / "model", step_frames=STEPS, log=None)
    codecs = {s: CodecEngine.open(folder / "model", CPU_ONLY, warn=None, step_frames=s) for s in STEPS}
    return model, folder, codecs


def _signal(length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000
    return (0.4 * np.sin(2 * np.pi * (200 + 90 * rng.random()) * t) + 0.1 * rng.standard_normal(length)) \
        .astype(np.float32)


def test_config_from_dac_kwargs_and_bits():
    cfg = DacConfig.from_dac_kwargs({"encoder_dim": 64, "encoder_rates": [2, 4, 8, 8], "latent_dim": None,
                                     "decoder_dim": 1536, "decoder_rates": [8, 8, 4, 2], "n_codebooks": 9,
                                     "codebook_size": 1024, "codebook_dim": 8, "quantizer_dropout": 0.5,
                                     "sample_rate": 44100})
    assert cfg == DacConfig() and cfg.latent_dim == 1024 and cfg.hop_length == 512
    assert cfg.bits_per_code == 10 and cfg.bitrate() == pytest.approx(44100 / 512 * 9 * 10)
    assert cfg.frames_for(1) == 1 and cfg.frames_for(512) == 1 and cfg.frames_for(513) == 2
    assert config_from_codec({"family": "dac", **cfg.to_dict()}) == cfg
    assert codebook_shape(cfg) == (9, 1024, 8)
    with pytest.raises(ValueError, match="same product"):
        DacConfig(decoder_rates=(8, 8, 4, 4))


def test_dac_checkpoint_loads_into_the_same_weights(dac_export):
    from apucodec.codec.checkpoint import load_checkpoint

    model, folder, _ = dac_export
    loaded = load_checkpoint(folder / "weights.pth")
    assert loaded.source_format == "dac" and loaded.model.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_manifest_names_the_family_and_lists_projections(dac_export):
    _, folder, codecs = dac_export
    manifest = json.loads((folder / "model" / "manifest.json").read_text())
    assert manifest["codec"]["family"] == "dac" and manifest["codec"]["codebook_dim"] == 4
    assert manifest["files"]["rvq_projections"]["name"] == "rvq_projections.npz"
    assert manifest["files"]["codebooks"]["shape"] == [3, 32, 4]
    for role, record in manifest["export"]["parity"].items():
        assert record["snr_db"] is None or record["snr_db"] >= 80, role


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=st.sampled_from(STEPS), data=st.data())
def test_run_equals_whole_file_dac_at_every_sample(dac_export, step, data):
    model, _, codecs = dac_export
    codec = codecs[step]
    length = data.draw(st.integers(1, (3 * step + 20) * HOP + HOP - 1), label="length")
    audio = _signal(length, seed=length)
    out, _ = codec.run_array(audio)
    codes, _ = codec.encode_array(audio)
    assert codes.shape[1] == -(-length // HOP)
    decoded, _ = codec.decode_codes(codes, length)
    np.testing.assert_array_equal(decoded, out)

    with torch.no_grad():
        padded = model.preprocess(torch.from_numpy(audio)[None, None])
        latent_ref = model.encoder(padded)[0].numpy()
        audio_ref = model.decode(torch.from_numpy(codes.astype(np.int64))[None])[0, 0].numpy()
    stepper = codec.stepper("encoder")
    streamed = np.concatenate([stepper.push(audio[None]), stepper.finish()], axis=1)
    assert np.max(np.abs(streamed - latent_ref)) <= 1e-4
    n = min(length, audio_ref.size)  # DAC's odd stride ends its decode 8 samples early
    assert np.max(np.abs(out[:n] - audio_ref[:n])) <= 1e-4, "streamed audio differs from whole-file decoding"


def test_runtime_codes_equal_torch_codes(dac_export):
    model, _, codecs = dac_export
    audio = _signal(16000, seed=1)
    codes, _ = codecs[16].encode_array(audio)
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(audio)[None, None])[0].numpy()
    assert codes.shape == expected.shape == (3, 400)
    agreement = (codes == expected).mean(axis=1)
    assert np.all(agreement >= 0.999), agreement
    assert len(set(expected[0].tolist())) > 4  # the test is not vacuous: many codewords in use
    fewer, _ = codecs[16].encode_array(audio, n_codebooks=2)  # 1..n codebooks: a prefix of the full codes
    np.testing.assert_array_equal(fewer, codes[:2])
    decoded, _ = codecs[16].decode_codes(fewer, audio.size)
    with torch.no_grad():
        reference = model.decode(torch.from_numpy(fewer.astype(np.int64))[None])[0, 0].numpy()
    n = min(audio.size, reference.size)
    assert np.max(np.abs(decoded[:n] - reference[:n])) <= 1e-4


def test_projections_file_is_checked(dac_export, tmp_path):
    _, folder, _ = dac_export
    good = folder / "model" / "rvq_projections.npz"
    assert load_projections(good, 3, 8, 4)["in_weight"].shape == (3, 4, 8)
    with pytest.raises(ApucodecError, match="expected float32"):
        load_projections(good, 3, 8, 5)
    pickled = tmp_path / "p.npz"
    np.savez(pickled, in_weight=np.array([object()], dtype=object), in_bias=np.zeros(1), out_weight=np.zeros(1),
             out_bias=np.zeros(1))
    with pytest.raises(ApucodecError, match="p.npz"):
        load_projections(pickled, 3, 8, 4)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ApucodecError, match="not a NumPy .npz"):
        load_projections(tmp_path / "junk.npz", 3, 8, 4)


def test_npu_preset_follows_the_graph_ops():
    from apucodec.contract.npu_presets import choose_npu_preset

    assert choose_npu_preset({"Conv": 20, "Gelu": 10, "Add": 5})[0] == "xint8"
    name, reason = choose_npu_preset({"Conv": 20, "Sin": 22, "Mul": 40})
    assert name == "a16w8" and "Sin x22" in reason and "XINT8" in reason


def test_quantize_cpu_serves_a_dac_model(dac_export, tmp_path):
    """quantize --target cpu on a DAC directory: INT8 graphs written, fidelity measured through the projected RVQ,
    and the INT8 directory still encodes."""
    import shutil

    import soundfile as sf

    from apucodec.calibration.cpu_quantize import quantize_cpu
    from apucodec.model.directory import load_model_dir

    _, folder, _ = dac_export
    model_path = tmp_path / "model"
    shutil.copytree(folder / "model", model_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(4):
        sf.write(calib / f"c{i}.wav", _signal(12000, seed=100 + i), 16000)
    result = quantize_cpu(model_path, calib, clips=6, seed=0)
    assert len(result.fidelity.code_agreement) == 3
    assert all(0.0 <= a <= 1.0 for a in result.fidelity.code_agreement)
    model = load_model_dir(model_path)
    assert model.step_graph("encoder", 16, "cpu-int8") is not None and model.has("rvq_projections")
    codec = CodecEngine.open(model_path, CPU_ONLY, warn=None)
    codes, _ = codec.encode_array(_signal(4000, seed=9))
    assert codes.shape == (3, 100)


@pytest.mark.slow
def test_quantize_encoder_auto_picks_a16w8_for_snake(dac_export, tmp_path):
    """quantize-encoder on a DAC directory: `auto` reads Sin in the FP32 graph and quantizes with A16W8."""
    pytest.importorskip("quark")
    import shutil

    import soundfile as sf

    from apucodec.calibration.quantize import quantize_encoder

    _, folder, _ = dac_export
    model_path = tmp_path / "model"
    shutil.copytree(folder / "model", model_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        sf.write(calib / f"c{i}.wav", _signal(16000, seed=200 + i), 16000)
    said: list[str] = []
    result = quantize_encoder(model_path, calib, preset_name="auto", steps=4, threads=1, on_status=said.append)
    assert result.preset == "a16w8"
    assert any("Sin" in line and "a16w8" in line for line in said)


def test_bad_dac_checkpoints_fail_with_one_line(tmp_path):
    from apucodec.codec.checkpoint import load_checkpoint

    model = tiny_dac(seed=1)
    bad_kwargs = save_dac_checkpoint(model, tmp_path / "rates.pth",
                                     {**TINY_DAC_KWARGS, "decoder_rates": [4, 4, 2]})
    with pytest.raises(ApucodecError, match="rates.pth: checkpoint does not match.*same product"):
        load_checkpoint(bad_kwargs)
    wrong_size = save_dac_checkpoint(model, tmp_path / "size.pth", {**TINY_DAC_KWARGS, "codebook_dim": 5})
    with pytest.raises(ApucodecError, match="size.pth: checkpoint does not match"):
        load_checkpoint(wrong_size)
