"""The EnCodec family without its package: config, state-dict loading, exact step graphs, runtime codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.codec.encodec.checkpoint import is_encodec_state_dict, load_encodec_state_dict
from apucodec.contract.encodec_config import EncodecConfig
from apucodec.contract.families import codec_from_config, config_from_codec
from apucodec.export.encodec_steps import build_encodec_steps
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.runtime.stepper import Stepper
from tests.encodec_helpers import SMALL, package_state_dict, small_model

# Torch on one thread: faster on a shared 2-core box, and the reference codes do not depend on how many threads
# an earlier test left torch with (a near-tie in the codebook search can flip with the summation order).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

HOP = SMALL.hop_length


def test_config_is_the_24khz_model_and_round_trips_through_the_manifest_mapping():
    cfg = EncodecConfig()
    assert (cfg.hop_length, cfg.frame_rate, cfg.bits_per_code, cfg.latent_dim) == (320, 75.0, 10, 128)
    assert [cfg.codebooks_for_bandwidth(b) for b in cfg.bandwidths] == [2, 4, 8, 16, 32]
    assert cfg.bitrate(8) == 6000.0 and cfg.frames_for(321) == 2
    # The deepest reflect-padded conv (kernel 7 at one sample per frame) reaches 6 frames ahead at the start.
    assert cfg.start_frames == 7
    codec = codec_from_config(cfg)
    assert codec["family"] == "encodec" and config_from_codec(codec) == cfg
    with pytest.raises(ValueError, match="causal"):
        EncodecConfig(causal=False)


def test_package_state_dict_loads_with_its_config_read_off_the_shapes():
    model = small_model()
    state = package_state_dict(model)
    assert is_encodec_state_dict(state)
    loaded = load_encodec_state_dict(state)
    assert loaded.config == SMALL
    audio = torch.randn(1, 1, 9 * HOP) * 0.2
    torch.testing.assert_close(loaded.decoder(loaded.encoder(audio)), model.decoder(model.encoder(audio)))


def _torch_step(net):
    def step(x, state, bounds):
        with torch.no_grad():
            y, nxt = net(torch.from_numpy(x), torch.from_numpy(state), torch.from_numpy(bounds))
        return y.numpy(), nxt.numpy()
    return step


@pytest.mark.parametrize("frames", [3, 23])
@pytest.mark.parametrize("step_frames", [1, 4])
def test_step_networks_stream_exactly_with_a_start_step(frames, step_frames):
    """Reflect padding at the file's start, LSTM state across steps, a file shorter than the first step."""
    model = small_model()
    audio = torch.randn(1, 1, frames * HOP) * 0.3
    with torch.no_grad():
        latent = model.encoder(audio)
        out = model.decoder(latent)
    for stage, x, want in (("encoder", audio[0].numpy(), latent[0].numpy()),
                           ("decoder", latent[0].numpy(), out[0].numpy())):
        net = build_encodec_steps(getattr(model, stage), step_frames, HOP)
        start = build_encodec_steps(getattr(model, stage), SMALL.start_frames, HOP)
        assert net.start_frames == SMALL.start_frames and net.delay_samples == 0
        stepper = Stepper.for_stage(_torch_step(net), stage, hop=HOP, latent_dim=SMALL.latent_dim, delay_samples=0,
                                    step_frames=step_frames, state_size=net.state_size, horizon=net.horizon_frames,
                                    first=(_torch_step(start), start.step_frames, start.horizon_frames))
        piece = 37 if stage == "encoder" else 1
        got = np.concatenate([stepper.push(x[:, i: i + piece]) for i in range(0, x.shape[1], piece)]
                             + [stepper.finish(frames)], axis=1)
        np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)


def test_a_zero_cache_start_is_not_the_packages_start():
    """Without the start step, the first frames differ: the test above could fail."""
    model = small_model()
    audio = torch.randn(1, 1, 12 * HOP) * 0.3
    with torch.no_grad():
        latent = model.encoder(audio)[0].numpy()
    net = build_encodec_steps(model.encoder, 1, HOP)
    stepper = Stepper.for_stage(_torch_step(net), "encoder", hop=HOP, latent_dim=latent.shape[0], delay_samples=0,
                                step_frames=1, state_size=net.state_size, horizon=net.horizon_frames)
    got = np.concatenate([stepper.push(audio[0].numpy()), stepper.finish(12)], axis=1)
    assert np.abs(got[:, :2] - latent[:, :2]).max() > 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = small_model()
    root = tmp_path_factory.mktemp("encodec")
    torch.save(package_state_dict(model), root / "encodec.th")
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--checkpoint", str(root / "encodec.th"), "--out", str(root / "model"),
                                 "--step-frames", "1,4,64", "--no-simplify", "-q"])
    assert result.exit_code == 0, result.output
    return model, root


def test_export_recognises_the_state_dict_and_writes_an_encodec_directory(exported):
    from apucodec.model.directory import load_model_dir

    _, root = exported
    model = load_model_dir(root / "model")
    assert model.manifest.codec["family"] == "encodec"
    assert model.config == SMALL
    sizes = sorted(e.step_frames for e in model.files.values() if e.stage == "encoder")
    assert sizes == [1, 4, SMALL.start_frames, 64]   # the start graph is added
    assert all(p["snr_db"] is None or p["snr_db"] >= 80 for p in model.manifest.export.parity.values())
    assert model.manifest.streaming.encoder.delay_samples == 0 == model.manifest.streaming.decoder.delay_samples


@pytest.mark.parametrize("step_frames", [1, 4, 64])
def test_runtime_streams_equal_the_torch_model_at_every_sample(exported, step_frames):
    model, root = exported
    rng = np.random.default_rng(1)
    length = 40 * HOP + 123   # not whole frames: the runtime zero-pads the last one
    audio = (0.3 * np.sin(np.arange(length) * 0.05) + 0.05 * rng.standard_normal(length)).astype(np.float32)
    padded = np.zeros(41 * HOP, dtype=np.float32)
    padded[:length] = audio
    with torch.no_grad():
        codes_ref = model.encode(torch.from_numpy(padded).view(1, 1, -1))[0].numpy()
        audio_ref = model.decode(torch.from_numpy(codes_ref)[None])[0, 0].numpy()[:length]
    codec = CodecEngine.open(root / "model", SessionSettings(step_frames=step_frames, threads=1),
                       stages=("encoder", "decoder"))
    codes, _ = codec.encode_array(audio)
    # Two float implementations of one nearest-codeword search can split a near tie differently (seen: one code of
    # 41 x 8 differing at 4- and 64-frame steps only when other test modules ran first in the process): the encoder
    # is held to the codes up to such rare flips, the decoder to the reference codes exactly.
    assert codes.shape == codes_ref.shape and np.mean(codes == codes_ref) >= 0.99
    decoded, _ = codec.decode_codes(codes_ref, length)
    np.testing.assert_allclose(np.asarray(decoded).reshape(-1), audio_ref, atol=1e-5, rtol=0)
    if np.array_equal(codes, codes_ref):
        out, _ = codec.run_array(audio)
        np.testing.assert_allclose(np.asarray(out).reshape(-1), audio_ref, atol=1e-5, rtol=0)


def test_export_family_override_and_bad_names(exported, tmp_path):
    _, root = exported
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--checkpoint", str(root / "encodec.th"), "--out", str(tmp_path / "a"),
                                 "--family", "apucodec", "-q"])
    assert result.exit_code != 0 and "not an APU-Codec checkpoint" in result.output
    result = runner.invoke(cli, ["export", "--checkpoint", str(root / "encodec.th"), "--out", str(tmp_path / "b"),
                                 "--family", "nope", "-q"])
    assert result.exit_code != 0 and "--family 'nope'" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_encode_bandwidth_is_a_codebook_count(exported, tmp_path):
    import soundfile as sf

    _, root = exported
    sf.write(tmp_path / "in.wav", (0.2 * np.sin(np.arange(24000) * 0.03)).astype(np.float32), 24000)
    runner = CliRunner()
    result = runner.invoke(cli, ["encode", str(tmp_path / "in.wav"), str(tmp_path / "o.apc"), "--model",
                                 str(root / "model"), "--bandwidth", "6"])
    assert result.exit_code == 0, result.output
    assert "8 codebooks" in result.output
    result = runner.invoke(cli, ["encode", str(tmp_path / "in.wav"), str(tmp_path / "p.apc"), "--model",
                                 str(root / "model"), "--bandwidth", "5"])
    assert result.exit_code != 0 and "--bandwidth 5" in result.output and not (tmp_path / "p.apc").exists()


def test_bf16_rewrite_puts_every_op_of_the_encodec_graphs_on_the_npu_bf16_list(exported):
    """EnCodec's FP32 graphs compile to BF16 on the NPU whole (LSTM included) once Elu is rewritten; the bounds
    and first-step arithmetic use no Clip."""
    import onnx
    import onnxruntime as ort

    from apucodec.calibration.bf16_rewrite import bf16_rewrite
    from apucodec.contract.npu_ops import check_bf16_ops

    _, root = exported
    for name in ("encoder.s1.onnx", "decoder.s4.onnx"):
        model = onnx.load(root / "model" / name)
        before = check_bf16_ops(model)
        assert before.not_listed == ["Elu"] and "LSTM" in before.op_counts
        rewritten, replaced = bf16_rewrite(model)
        assert replaced == {"Elu": before.op_counts["Elu"]} and check_bf16_ops(rewritten).ready
        rng = np.random.default_rng(0)
        feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
                 * 0.3 for i in model.graph.input}
        feeds["bounds"] = np.array([0.0, 9.0], dtype=np.float32)   # a first step: the reflections run too
        a, b = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
                for m in (model, rewritten))
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(y, x, rtol=0, atol=1e-5)
