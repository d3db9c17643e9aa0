"""`apucodec export` on a tiny codec: what the model directory holds, and that it computes what PyTorch computes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.codec.checkpoint import load_checkpoint
from apucodec.codec.model import APUCodec
from apucodec.contract.config import preset
from apucodec.dsp.signals import signal
from apucodec.export import export_model
from apucodec.export.folding import fold_weight_norm
from apucodec.model.directory import load_model_dir
from tests.export_helpers import leftovers

PLAIN_OPS = {"Conv", "ConvTranspose", "LeakyRelu", "Add", "Tanh"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


STEP_OPS = PLAIN_OPS | {"Slice", "Concat", "Reshape", "Mul", "Max", "Min", "Gather", "Constant"}


def test_manifest_describes_the_verified_step_graphs(tiny_model_dir):
    model = load_model_dir(tiny_model_dir)
    m = model.manifest
    cfg = model.config
    assert m.format_version == 2
    assert set(model.files) == {"encoder.s4", "encoder.s64", "decoder.s4", "decoder.s64", "codebooks",
                                "encoder.fp32.weights", "decoder.fp32.weights"}  # each stage's weights, once
    assert model.step_sizes("encoder") == model.step_sizes("decoder") == [4, 64]
    streaming = m.streaming
    for stage in ("encoder", "decoder"):
        facts = model.streaming(stage)
        assert facts.delay_samples > 0 and facts.state_size > 0
        for s in (4, 64):
            entry = model.files[f"{stage}.s{s}"]
            assert entry.stage == stage and entry.step_frames == s and entry.precision == "fp32"
            assert entry.state_size == facts.state_size and entry.horizon_frames > s
    # Each stage's lookahead, and the latency a reader computes from them.
    assert streaming.encoder.delay_samples == 8 * 512  # tiny: 8 frames of lookahead
    latency = streaming.algorithmic_latency["4"]["samples"]
    assert latency == streaming.encoder.delay_samples + streaming.decoder.delay_samples + 4 * 512
    enc, dec = model.files["encoder.s4"], model.files["decoder.s64"]
    n_enc, n_dec = model.streaming("encoder").state_size, model.streaming("decoder").state_size
    assert [t.to_dict() for t in enc.inputs] == [
        {"name": "audio", "shape": [1, 1, 4 * 512], "dtype": "float32"},
        {"name": "state", "shape": [1, n_enc], "dtype": "float32"},
        {"name": "bounds", "shape": [2], "dtype": "float32"}]
    assert [t.to_dict() for t in enc.outputs] == [
        {"name": "latent", "shape": [1, cfg.latent_dim, 4], "dtype": "float32"},
        {"name": "next_state", "shape": [1, n_enc], "dtype": "float32"}]
    assert dec.inputs[0].shape == [1, cfg.latent_dim, 64] and dec.outputs[0].shape == [1, 1, 64 * 512]
    assert dec.outputs[1].shape == [1, n_dec]
    assert model.files["codebooks"].shape == [cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim]

    export = m.export
    assert export.opset == 17 and export.simplifier.startswith("onnxsim")
    assert export.weight_norm_folded > 0 and export.caveats == []
    for role in ("encoder.s4", "encoder.s64", "decoder.s4", "decoder.s64"):
        parity = export.parity[role]
        assert parity["snr_db"] >= 80 and parity["reference"] == "whole-file PyTorch"
        assert parity["edge_max_abs_error"] < 1e-4  # the file's ends equal whole-file inference too
        assert set(parity["signals"]) == {"tones", "chirp", "noise_bursts", "speech_like", "mixture"}
        assert model.files[role].graph.nodes <= model.files[role].graph.nodes_exported
    # GFLOP per frame is the same at both steps: no context is recomputed.
    per_frame = [model.files[f"encoder.s{s}"].graph.gflop / s for s in (4, 64)]
    assert per_frame[0] == pytest.approx(per_frame[1], rel=1e-6)
    assert {"apucodec", "torch", "onnx", "onnxruntime", "onnxsim"} <= set(m.producers)
    assert set(export.seconds) >= {"load", "steps", "parity", "export encoder.s4.onnx", "simplify decoder.s64.onnx"}


def test_graphs_are_static_opset17_step_graphs(tiny_model_dir):
    for name in ("encoder.s4.onnx", "decoder.s64.onnx"):
        graph = onnx.load(str(tiny_model_dir / name))
        assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [17]
        ops = {n.op_type for n in graph.graph.node}
        assert ops <= STEP_OPS, f"{name}: unexpected ops {ops - STEP_OPS} (weight norm not folded?)"
        assert "LeakyRelu" in ops and "Conv" in ops
        for value in [*graph.graph.input, *graph.graph.output]:
            dims = value.type.tensor_type.shape.dim
            assert all(d.HasField("dim_value") for d in dims)


def test_streamed_onnx_graphs_match_the_checkpoint_in_pytorch(tiny_model_dir, tiny_checkpoint):
    """An independent parity check: the checkpoint reloaded, a signal the export did not use (a different chirp),
    streamed through the runtime at both step sizes, compared with the whole-file torch network everywhere."""
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings

    model = load_checkpoint(tiny_checkpoint).model
    n = 3 * 44100 + 77
    t = np.arange(n) / 44100
    audio = (0.3 * np.sin(2 * np.pi * (300 * t + 2000 * t**2)) + 0.1 * signal("speech_like", n, 44100))
    audio = audio.astype(np.float32)
    frames = -(-n // 512)
    padded = np.zeros((1, 1, frames * 512), dtype=np.float32)
    padded[..., :n] = audio
    with torch.no_grad():
        latent_ref = model.encoder(torch.from_numpy(padded))[0].numpy()
    cpu = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1)
    for step in (4, 64):
        codec = CodecEngine.open(tiny_model_dir, cpu, warn=None, step_frames=step)
        enc = codec.stepper("encoder")
        latent = np.concatenate([enc.push(audio[None]), enc.finish()], axis=1)
        np.testing.assert_allclose(latent, latent_ref, rtol=1e-4, atol=1e-5 * float(np.abs(latent).max()))
        codes, _ = codec.encode_array(audio)
        with torch.no_grad():
            quantized = model.quantizer.dequantize(torch.from_numpy(codes.astype(np.int64))[None])
            audio_ref = model.decoder(quantized)[0, 0, :n].numpy()
        decoded, _ = codec.decode_codes(codes, n)
        np.testing.assert_allclose(decoded, audio_ref, rtol=1e-4, atol=1e-5)
        assert np.std(decoded) > 1e-3  # not a silent decoder
    np.testing.assert_array_equal(load_model_dir(tiny_model_dir).codebooks(), model.quantizer.codebooks.numpy())


def test_folding_leaves_the_original_model_untouched():
    torch.manual_seed(0)
    model = APUCodec(preset("tiny")).eval()
    audio = torch.from_numpy(signal("chirp", 4096, 44100)).view(1, 1, -1)
    with torch.no_grad():
        before = model.encoder(audio)
    folded, count = fold_weight_norm(model.encoder, model.config)
    assert count == sum(1 for k in model.encoder.state_dict() if k.endswith("original0"))
    assert not any(".parametrizations." in k for k in folded.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(folded(audio), before, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.encoder(audio), before, rtol=0, atol=0)  # original still works
    model.train()(audio)  # and still trains (parametrizations intact)


def test_seed_format_groupnorm_checkpoint_exports_whole_sequence_graphs_and_approximate_steps(tmp_path):
    """A bare state dict in the original project's layout (GroupNorm, GELU, per-codebook keys), tiny widths."""
    cfg = dataclasses.replace(preset("tiny"), norm="group", activation="gelu")
    torch.manual_seed(1)
    state = {k: v for k, v in APUCodec(cfg).state_dict().items() if not k.startswith("quantizer.")}
    for i in range(cfg.n_codebooks):
        state[f"quantizer.codebooks.{i}"] = torch.randn(cfg.codebook_size, cfg.latent_dim)
    checkpoint = tmp_path / "seed.pt"
    torch.save(state, checkpoint)
    lines: list[str] = []
    md = export_model(checkpoint, tmp_path / "model", step_frames=(16,), log=lines.append)
    export = md.manifest.export
    assert export.source["format"] == "seed" and md.config.norm == "group"
    # Running statistics are not whole-file statistics: measured, recorded and said as approximate, not parity.
    assert "encoder.s16" not in export.parity
    whole = export.parity["encoder.whole"]["snr_db"]
    assert whole is None or whole >= 80  # None: bit-exact
    assert export.approximate["graphs"]["encoder.s16"]["snr_db"] < 80
    assert any("encoder.s16: approximate streaming" in line for line in lines)
    ops = {n.op_type for n in onnx.load(str(md.path_of("encoder.s16"))).graph.node}
    assert "Erf" in ops and "Gelu" not in ops  # opset 17 has no Gelu op


def test_group_norm_rewrite_is_exact_and_accurate_in_onnxruntime():
    import io
    import warnings

    from apucodec.dsp.metrics import snr_db
    from apucodec.export.folding import MultiLevelGroupNorm
    from apucodec.export.graph import simplify

    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(1, 4)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(1, 4, 145 * 512) * 0.3 + 0.5
    x[..., 20000:40000] *= 1e-3  # a quiet stretch, like noise bursts' gaps
    rewritten = MultiLevelGroupNorm(norm).eval()
    with torch.no_grad():
        reference = norm.double()(x.double()).numpy()
        torch.testing.assert_close(rewritten.double()(x.double()).numpy(), reference, rtol=1e-12, atol=1e-12)
        rewritten.float()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(rewritten, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"])
    graph, _ = simplify(onnx.load_from_string(buffer.getvalue()))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    assert snr_db(reference, session.run(None, {"x": x.numpy()})[0]) > 120


def test_cli_export_replaces_a_folder_with_force_and_honours_step_frames(tiny_checkpoint, tmp_path):
    out = tmp_path / "model"
    out.mkdir()  # an earlier model directory: --force replaces only one of ours (or an empty folder)
    (out / "manifest.json").write_text(json.dumps({"format": "apucodec-model", "format_version": 2}))
    (out / "old.txt").write_text("previous content")
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                                      "--step-frames", "2,8", "--force"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "algorithmic latency 2 frames" in result.stdout
    steps = [line for line in result.stderr.splitlines() if line.startswith("[export]")]
    for step in ("export encoder.s2.onnx", "simplify encoder.s8.onnx", "check decoder.s2.onnx", "steps", "parity"):
        assert any(line.startswith(f"[export] {step}") and line.endswith(" s)") for line in steps), step
    assert not (out / "old.txt").exists()
    md = load_model_dir(out)
    assert md.step_sizes("encoder") == md.step_sizes("decoder") == [2, 8]
    assert json.loads((out / "manifest.json").read_text())["export"]["source"]["format"] == "apucodec"
    assert leftovers(tmp_path) == []


def test_unsimplified_export_with_float16_codebooks(tiny_checkpoint, tmp_path):
    md = export_model(tiny_checkpoint, tmp_path / "model", step_frames=(4,), simplify=False,
                      codebooks_dtype="float16", log=None)
    assert md.manifest.export.simplifier == "none" and "onnxsim" not in md.manifest.producers
    for role in ("encoder.s4", "decoder.s4"):
        info = md.files[role].graph
        assert info.nodes == info.nodes_exported
    assert md.files["codebooks"].dtype == "float16"
    assert np.load(md.path_of("codebooks")).dtype == np.float16
    reference = load_checkpoint(tiny_checkpoint).model.quantizer.codebooks.numpy()
    assert md.codebooks().dtype == np.float32
    np.testing.assert_allclose(md.codebooks(), reference, rtol=1e-3, atol=1e-3)


def test_export_is_deterministic(tiny_model_dir, tiny_checkpoint, tmp_path):
    """Same checkpoint and steps -> byte-identical files, so the model id (stamped into .apc files) is stable."""
    again = export_model(tiny_checkpoint, tmp_path / "again", log=None)
    assert again.model_id == load_model_dir(tiny_model_dir).model_id
