"""Seed-format (GroupNorm) checkpoints: exact offline through whole-sequence graphs, approximate (and labelled so)
streaming through running statistics, and one-line refusals of malformed checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from apucodec.codec.checkpoint import load_checkpoint
from apucodec.codec.model import APUCodec
from apucodec.contract.config import preset
from apucodec.dsp.metrics import snr_db
from apucodec.dsp.signals import signal
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.stage_plan import SessionSettings
from tests.cli_helpers import CPU, assert_one_line_error, invoke
from tests.tiny_models import export_on_one_thread, torch_threads

# Torch on one thread: faster on a shared 2-core box, and the reference codes do not depend on how many threads
# an earlier test left torch with (a near-tie in the codebook search can flip with the summation order).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEED_CFG = dataclasses.replace(preset("tiny"), norm="group", activation="gelu")
CPU_SETTINGS = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1)


def seed_state(cfg=SEED_CFG, seed: int = 1) -> dict[str, torch.Tensor]:
    """A bare state dict in the original project's layout: plain convs, GroupNorm, one tensor per codebook."""
    torch.manual_seed(seed)
    model = APUCodec(cfg)
    model.train()
    with torch.no_grad():  # codebooks from data, so codes spread as a trained model's do
        model(torch.from_numpy(signal("mixture", 44100, 44100)).view(1, 1, -1))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("quantizer.")}
    for i, book in enumerate(model.quantizer.codebooks):
        state[f"quantizer.codebooks.{i}"] = book.clone()
    return state


@pytest.fixture(scope="module")
def seed_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "seed.pt"
    torch.save(seed_state(), path)
    return path


@pytest.fixture(scope="module")
def seed_model_dir(seed_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_on_one_thread(seed_checkpoint, tmp_path_factory.mktemp("seed_model"), step_frames=(4, 16))


def reference(checkpoint: Path, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's own whole-file forward: (codes [n, frames], audio trimmed to the input's length)."""
    model = load_checkpoint(checkpoint).model
    frames = -(-audio.size // 512)
    padded = np.zeros((1, 1, frames * 512), np.float32)
    padded[0, 0, : audio.size] = audio
    with torch.no_grad(), torch_threads(1):
        codes = model.quantizer.quantize_codes(model.encoder(torch.from_numpy(padded)))
        out = model.decoder(model.quantizer.dequantize(codes))[0, 0, : audio.size].numpy()
    return codes[0].numpy(), out


def test_export_writes_exact_whole_sequence_graphs_and_labels_step_graphs_approximate(seed_model_dir: Path):
    manifest = json.loads((seed_model_dir / "manifest.json").read_text())
    export = manifest["export"]
    assert export["source"]["format"] == "seed" and manifest["codec"]["norm"] == "group"
    assert set(export["parity"]) == {"encoder.whole", "decoder.whole"}  # step graphs are never "parity"
    assert all(p["snr_db"] is None or p["snr_db"] >= 80 for p in export["parity"].values())
    graphs = export["approximate"]["graphs"]
    assert set(graphs) == {"encoder.s4", "encoder.s16", "decoder.s4", "decoder.s16"}
    assert all(isinstance(g["snr_db"], float) for g in graphs.values())
    assert manifest["files"]["encoder.whole"]["inputs"][0]["shape"] == [1, 1, "samples"]
    assert export["caveats"] == []


def test_offline_run_encode_decode_equal_the_checkpoints_whole_file_forward(seed_checkpoint, seed_model_dir):
    n = 3 * 44100 + 77  # not a whole number of frames
    audio = (0.5 * signal("mixture", n, 44100)).astype(np.float32)
    codes_ref, audio_ref = reference(seed_checkpoint, audio)
    warnings: list[str] = []
    codec = CodecEngine.open(seed_model_dir, CPU_SETTINGS, warn=warnings.append)
    assert codec.whole_sequence and codec.placement.stage("encoder").graph == "encoder.whole.onnx"
    assert not warnings  # offline is exact: nothing to warn about
    out, result = codec.run_array(audio)
    assert out.shape == audio.shape and snr_db(audio_ref, out) > 80 and not result.notes
    codes, _ = codec.encode_array(audio)
    assert np.mean(codes == codes_ref) >= 0.99
    decoded, _ = codec.decode_codes(codes, n)
    np.testing.assert_array_equal(decoded, out)  # run is exactly encode then decode


def test_a_run_past_the_memory_limit_uses_segments_and_says_so_once(seed_checkpoint, seed_model_dir):
    n = 3 * 44100
    audio = (0.5 * signal("speech_like", n, 44100)).astype(np.float32)
    settings = dataclasses.replace(CPU_SETTINGS, whole_max_seconds=1.0)
    codec = CodecEngine.open(seed_model_dir, settings, warn=None)
    out, result = codec.run_array(audio)
    assert len(result.notes) == 1 and "segments of at most 1.0 s" in result.notes[0]
    frames = int(1.0 * 44100 / 512)  # each segment is its own whole-file forward
    pieces = [reference(seed_checkpoint, audio[i: i + frames * 512])[1] for i in range(0, n, frames * 512)]
    assert snr_db(np.concatenate(pieces), out) > 80
    codes, encoded = codec.encode_array(audio)
    decoded, _ = codec.decode_codes(codes, n)
    np.testing.assert_array_equal(decoded, out)


@pytest.mark.parametrize("stages", [("encoder",), ("encoder", "decoder")])
def test_worker_process_stages_run_the_exact_whole_sequence_graphs(seed_model_dir, stages):
    """A stage in a worker process (another onnxruntime) runs the same exact graph as in this process, on
    segments its buffer holds (cut the same way for the encoder and the decoder)."""
    n = 2 * 44100 + 300
    audio = (0.5 * signal("speech_like", n, 44100)).astype(np.float32)
    settings = dataclasses.replace(CPU_SETTINGS, whole_max_seconds=0.8)
    here = CodecEngine.open(seed_model_dir, settings, warn=None)
    expected, _ = here.run_array(audio)
    in_workers = dataclasses.replace(settings, workers=dict.fromkeys(stages, "self"))
    codec = CodecEngine.open(seed_model_dir, in_workers, warn=None)
    try:
        assert codec.whole_sequence
        assert all(codec.placement.stage(s).graph == f"{s}.whole.onnx" for s in ("encoder", "decoder"))
        assert all(codec.placement.stage(s).runtime.get("worker") for s in stages)
        out, result = codec.run_array(audio)
        assert len(result.notes) == 1 and "segments" in result.notes[0]
        np.testing.assert_allclose(out, expected, atol=1e-6)
        codes, _ = codec.encode_array(audio)
        np.testing.assert_array_equal(codes, here.encode_array(audio)[0])
    finally:
        for session in codec.sessions.values():
            session.close()


def test_streaming_says_it_is_approximate_with_the_number(seed_model_dir: Path):
    warnings: list[str] = []
    codec = CodecEngine.open(seed_model_dir, CPU_SETTINGS, warn=warnings.append, step_frames=4)
    assert not codec.whole_sequence
    measured = json.loads((seed_model_dir / "manifest.json").read_text())["export"]["approximate"]["graphs"]
    [line] = [w for w in warnings if "approximate" in w]
    assert f"encoder {measured['encoder.s4']['snr_db']} dB" in line and "4 frames" in line


def test_running_statistics_end_at_the_whole_sequence_statistics():
    from apucodec.export.folding import MultiLevelGroupNorm
    from apucodec.export.running_norm import RunningGroupNorm
    from apucodec.export.streaming import BoundsMask, Track, _Layout, _Step

    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(2, 6)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(1, 6, 40 * 8) * 0.7 + 0.4
    layout, step_len = _Layout(), 40
    op = RunningGroupNorm(MultiLevelGroupNorm(norm), BoundsMask(Track(1, 0), step_len), layout, "n", step_len)
    state = torch.zeros(1, layout.size)
    for k in range(8):
        step = _Step(state, torch.tensor([float(k * step_len), float(320 - k * step_len)]))
        y = op(x[..., k * step_len: (k + 1) * step_len], step)
        state = torch.cat(step.parts, dim=1)
    count, mean, m2 = state.reshape(3, 2)
    grouped = x.reshape(2, -1).double()
    torch.testing.assert_close(count.double(), torch.full((2,), 3.0 * 320, dtype=torch.float64))
    torch.testing.assert_close(mean.double(), grouped.mean(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close((m2 / count).double(), grouped.var(1, unbiased=False), rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # the last step saw the whole sequence: it is normalised exactly as whole-file
        torch.testing.assert_close(y, norm(x)[..., -step_len:], rtol=1e-4, atol=1e-5)


def test_running_statistics_come_closer_than_per_step_pooling():
    from apucodec.export.folding import fold_weight_norm
    from apucodec.export.streaming import build_steps

    torch.manual_seed(0)
    model = APUCodec(SEED_CFG).eval()
    n = 40 * 512
    x = torch.from_numpy(signal("mixture", n, 44100)).view(1, 1, -1)
    with torch.no_grad(), torch_threads(1):
        ref = model.encoder(x).numpy()[0]
        encoder, _ = fold_weight_norm(model.encoder, SEED_CFG)
        found = {}
        for mode in ("per-step", "running"):
            net = build_steps(encoder, 4, 512, mode)
            state, outs, h = torch.zeros(1, net.state_size), [], net.horizon_frames
            padded = torch.zeros(1, 1, 60 * 512)
            padded[..., :n] = x
            for k in range(15):
                bounds = torch.tensor([max(-h, min(4 * k, h)), max(-h, min(40 - 4 * k, h))], dtype=torch.float32)
                y, state = net(padded[..., k * 2048: (k + 1) * 2048], state, bounds)
                outs.append(y)
            delay = net.delay_samples // 512
            found[mode] = snr_db(ref, torch.cat(outs, -1).numpy()[0][:, delay: delay + 40])
    assert found["running"] > found["per-step"] + 6, found


def test_cli_run_on_a_seed_model_matches_pytorch(seed_checkpoint, seed_model_dir, tmp_path):
    import soundfile as sf

    n = 2 * 44100 + 5
    audio = (0.5 * signal("speech_like", n, 44100)).astype(np.float32)
    sf.write(tmp_path / "in.wav", audio, 44100, subtype="FLOAT")
    result = invoke("run", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), *CPU, model=seed_model_dir)
    assert result.exit_code == 0, result.output
    out, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    assert snr_db(reference(seed_checkpoint, audio)[1], out) > 60  # 16-bit output file


@pytest.mark.parametrize("case", ["seed_plus_ema", "seed_plus_weight_norm", "project_plus_seed_codebook",
                                  "groups_do_not_divide"])
def test_malformed_checkpoints_end_in_one_line_naming_the_key(case, tmp_path):
    path = tmp_path / "bad.pt"
    if case.startswith("seed_plus"):
        state = seed_state()
        key = "quantizer.ema_sum" if case == "seed_plus_ema" else "encoder.input_conv.parametrizations.weight.original0"
        state[key] = torch.zeros(1)
        torch.save(state, path)
    else:
        cfg = dataclasses.replace(SEED_CFG, norm_groups=3 if case == "groups_do_not_divide" else 1)
        key = "quantizer.codebooks.0" if case == "project_plus_seed_codebook" else "encoder.blocks.0.res1.norm.weight"
        state = APUCodec(dataclasses.replace(cfg, norm_groups=1)).state_dict()
        if case == "project_plus_seed_codebook":
            state[key] = torch.zeros(64, 16)
        torch.save({"config": cfg.to_dict(), "state_dict": state, "step": 0}, path)
    result = invoke("export", "--checkpoint", str(path), "--out", str(tmp_path / "m"))
    assert_one_line_error(result, str(path), key, progress="[export] ")
    assert not (tmp_path / "m").exists()


def test_distilling_a_seed_model_lowers_the_loss_and_exports_with_exact_streaming(seed_checkpoint, tmp_path):
    import soundfile as sf

    from apucodec.codec.distill import DistillSettings, distill, student_of

    data = tmp_path / "audio"
    data.mkdir()
    for i, kind in enumerate(("speech_like", "mixture", "chirp")):
        sf.write(data / f"{i}.wav", 0.5 * signal(kind, 3 * 44100, 44100), 44100)
    teacher = load_checkpoint(seed_checkpoint).model
    student, copied, skipped = student_of(teacher)
    assert skipped and all(".norm." in k for k in skipped) and copied == len(teacher.state_dict()) - len(skipped)
    x = torch.from_numpy(signal("mixture", 8192, 44100)).view(1, 1, -1)
    with torch.no_grad():  # convolutions carry the teacher's effective weights through weight norm
        torch.testing.assert_close(student.encoder.input_conv.weight, teacher.encoder.input_conv.weight)
        assert torch.equal(student.quantizer.codebooks, teacher.quantizer.codebooks)
        assert student(x).audio.shape == teacher(x).audio.shape
    settings = DistillSettings(steps=30, batch_size=2, segment_seconds=0.3, lr=3e-3, log_every=100)
    with torch_threads(1):
        result = distill(seed_checkpoint, data, tmp_path / "student.pt", settings, log=lambda m: None)
    assert result.steps_done == 30
    assert np.mean(result.losses[-5:]) < 0.8 * np.mean(result.losses[:5]), result.losses
    model_dir = export_on_one_thread(tmp_path / "student.pt", tmp_path, step_frames=(4,))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["codec"]["norm"] == "weight" and "approximate" not in manifest["export"]
    assert all(p["snr_db"] is None or p["snr_db"] >= 80 for p in manifest["export"]["parity"].values())


def test_cpu_int8_quantizes_the_whole_sequence_graphs_a_seed_model_runs(seed_model_dir, tmp_path):
    import shutil

    import soundfile as sf

    from apucodec.calibration.cpu_quantize import quantize_cpu

    model_dir = tmp_path / "model"
    shutil.copytree(seed_model_dir, model_dir)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, kind in enumerate(("speech_like", "mixture", "chirp", "noise_bursts")):
        sf.write(calib / f"{i}.wav", 0.5 * signal(kind, 2 * 44100, 44100), 44100)
    result = quantize_cpu(model_dir, calib, clips=3, threads=1)
    assert set(result.paths) == {"encoder.whole.cpu-int8", "decoder.whole.cpu-int8"}
    assert result.fidelity["latent_snr_db"] > 15
    codec = CodecEngine.open(model_dir, CPU_SETTINGS, warn=None)
    assert codec.whole_sequence
    assert [codec.placement.stage(s).graph for s in ("encoder", "decoder")] == \
        ["encoder.whole.cpu-int8.onnx", "decoder.whole.cpu-int8.onnx"]
    audio = (0.5 * signal("speech_like", 44100, 44100)).astype(np.float32)
    out, _ = codec.run_array(audio)
    fp32 = CodecEngine.open(model_dir, dataclasses.replace(CPU_SETTINGS, encoder_graph="fp32", decoder_graph="fp32"),
                      warn=None)
    assert snr_db(fp32.run_array(audio)[0], out) > 10  # INT8, close to FP32
