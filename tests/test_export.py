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
from apucodec.codec.config import preset
from apucodec.codec.model import APUCodec
from apucodec.export import export_model
from apucodec.export.folding import fold_weight_norm
from apucodec.export.signals import signal
from apucodec.model_dir import load_model_dir
from tests.export_helpers import leftovers, torch_threads

PLAIN_OPS = {"Conv", "ConvTranspose", "LeakyRelu", "Add", "Tanh"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def test_manifest_describes_three_verified_graphs(tiny_model_dir):
    model = load_model_dir(tiny_model_dir)
    m = model.manifest
    g = model.geometry
    cfg = model.config
    assert set(model.files) == {"encoder", "codebooks", "decoder"}
    assert g.hop == 512 and g.context_frames == m["window"]["receptive_field"]["context_frames"] == 8
    assert g.chunk_frames == round(1.5 * 44100 / 512)
    enc, dec = model.files["encoder"], model.files["decoder"]
    assert enc["inputs"] == [{"name": "audio", "shape": [1, 1, g.window_samples], "dtype": "float32"}]
    assert enc["outputs"] == [{"name": "latent", "shape": [1, cfg.latent_dim, g.window_frames], "dtype": "float32"}]
    assert dec["inputs"][0]["shape"] == [1, cfg.latent_dim, g.window_frames]
    assert dec["outputs"][0]["shape"] == [1, 1, g.window_samples]
    assert model.files["codebooks"]["shape"] == [cfg.n_codebooks, cfg.codebook_size, cfg.latent_dim]

    export = m["export"]
    assert export["opset"] == 17 and export["simplifier"].startswith("onnxsim")
    assert export["weight_norm_folded"] > 0 and export["caveats"] == []
    for role in ("encoder", "decoder"):
        assert export["parity"][role]["snr_db"] >= 80
        assert set(export["parity"][role]["signals"]) == {"tones", "chirp", "noise_bursts", "speech_like", "mixture"}
        stitch = export["stitching"][role]
        assert stitch["passed"] and stitch["interior_rel_error"] < 1e-4
        assert stitch["edge_rel_error"] > stitch["interior_rel_error"]  # the ends really are different
        assert model.files[role]["graph"]["nodes"] <= model.files[role]["graph"]["nodes_exported"]
        probe = m["window"]["receptive_field"]["probe"][role]
        assert probe["within_analytic"] and probe["gradient_matches_analytic"]
    assert {"apucodec", "torch", "onnx", "onnxruntime", "onnxsim"} <= set(m["producers"])
    assert set(export["seconds"]) >= {"load", "parity", "stitching", "export encoder.onnx", "simplify decoder.onnx"}


def test_graphs_are_static_opset17_plain_convolutions(tiny_model_dir):
    for name in ("encoder.onnx", "decoder.onnx"):
        graph = onnx.load(str(tiny_model_dir / name))
        assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [17]
        ops = {n.op_type for n in graph.graph.node}
        assert ops <= PLAIN_OPS, f"{name}: unexpected ops {ops - PLAIN_OPS} (weight norm not folded?)"
        for value in [*graph.graph.input, *graph.graph.output]:
            dims = value.type.tensor_type.shape.dim
            assert all(d.HasField("dim_value") for d in dims) and dims[0].dim_value == 1


def test_onnx_graphs_match_the_checkpoint_in_pytorch(tiny_model_dir, tiny_checkpoint):
    """An independent parity check: the checkpoint reloaded, a signal the export did not use (a different chirp)."""
    model = load_checkpoint(tiny_checkpoint).model
    md = load_model_dir(tiny_model_dir)
    window = md.geometry.window_samples
    t = np.arange(window) / 44100
    audio = (0.3 * np.sin(2 * np.pi * (300 * t + 2000 * t**2)) + 0.1 * signal("speech_like", window, 44100))
    audio = audio.astype(np.float32).reshape(1, 1, -1)
    encoder = ort.InferenceSession(str(md.path_of("encoder")), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(md.path_of("decoder")), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        latent_ref = model.encoder(torch.from_numpy(audio))
        quantized = model.quantizer.dequantize(model.quantizer.quantize_codes(latent_ref))
        audio_ref = model.decoder(quantized).numpy()
    latent = encoder.run(None, {"audio": audio})[0]
    decoded = decoder.run(None, {"latent": quantized.numpy()})[0]
    np.testing.assert_allclose(latent, latent_ref.numpy(), rtol=1e-4, atol=1e-5 * float(np.abs(latent).max()))
    np.testing.assert_allclose(decoded, audio_ref, rtol=1e-4, atol=1e-5)
    assert np.std(decoded) > 1e-3  # not a silent decoder
    np.testing.assert_array_equal(md.codebooks(), model.quantizer.codebooks.numpy())


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


def test_seed_format_groupnorm_checkpoint_exports_with_the_chunking_caveat(tmp_path):
    """A bare state dict in the original project's layout (GroupNorm, GELU, per-codebook keys), tiny widths."""
    cfg = dataclasses.replace(preset("tiny"), norm="group", activation="gelu")
    torch.manual_seed(1)
    state = {k: v for k, v in APUCodec(cfg).state_dict().items() if not k.startswith("quantizer.")}
    for i in range(cfg.n_codebooks):
        state[f"quantizer.codebooks.{i}"] = torch.randn(cfg.codebook_size, cfg.latent_dim)
    checkpoint = tmp_path / "seed.pt"
    torch.save(state, checkpoint)
    lines: list[str] = []
    md = export_model(checkpoint, tmp_path / "model", log=lines.append)
    export = md.manifest["export"]
    assert export["source"]["format"] == "seed" and md.config.norm == "group"
    assert len(export["caveats"]) == 1 and "GroupNorm" in export["caveats"][0]
    assert any(line.startswith("[export] caveat:") and "GroupNorm" in line for line in lines)
    assert export["stitching"]["encoder"]["passed"] is False  # measured, not assumed
    # well above the 80 dB bar thanks to MultiLevelGroupNorm (one long float32 ReduceMean gave ~93 dB here)
    assert export["parity"]["encoder"]["snr_db"] >= 110 and export["parity"]["decoder"]["snr_db"] >= 110
    assert md.manifest["window"]["receptive_field"]["pooled_statistics"] is True
    ops = {n.op_type for n in onnx.load(str(md.path_of("encoder"))).graph.node}
    assert "Erf" in ops and "Gelu" not in ops  # opset 17 has no Gelu op


def test_group_norm_rewrite_is_exact_and_accurate_in_onnxruntime():
    import io
    import warnings

    from apucodec.export.folding import MultiLevelGroupNorm
    from apucodec.export.graph import simplify
    from apucodec.export.parity import snr_db

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


def test_cli_export_replaces_a_folder_with_force_and_honours_chunk_seconds(tiny_checkpoint, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("previous content")
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                                      "--chunk-seconds", "0.5", "--force"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "parity SNR encoder" in result.stdout
    steps = [line for line in result.stderr.splitlines() if line.startswith("[export]")]
    for step in ("export encoder.onnx", "simplify encoder.onnx", "check encoder.onnx", "parity", "stitching"):
        assert any(line.startswith(f"[export] {step}") and line.endswith(" s)") for line in steps), step
    assert not (out / "old.txt").exists()
    md = load_model_dir(out)
    assert md.geometry.chunk_frames == round(0.5 * 44100 / 512)
    assert json.loads((out / "manifest.json").read_text())["export"]["source"]["format"] == "apucodec"
    assert leftovers(tmp_path) == []


def test_unsimplified_export_with_float16_codebooks(tiny_checkpoint, tmp_path):
    md = export_model(tiny_checkpoint, tmp_path / "model", simplify=False, codebooks_dtype="float16", log=None)
    assert md.manifest["export"]["simplifier"] == "none" and "onnxsim" not in md.manifest["producers"]
    for role in ("encoder", "decoder"):
        info = md.files[role]["graph"]
        assert info["nodes"] == info["nodes_exported"]
    assert md.files["codebooks"]["dtype"] == "float16"
    assert np.load(md.path_of("codebooks")).dtype == np.float16
    reference = load_checkpoint(tiny_checkpoint).model.quantizer.codebooks.numpy()
    assert md.codebooks().dtype == np.float32
    np.testing.assert_allclose(md.codebooks(), reference, rtol=1e-3, atol=1e-3)


def test_export_is_deterministic(tiny_model_dir, tiny_checkpoint, tmp_path):
    """Same checkpoint and geometry -> byte-identical files, so the model id (stamped into .apc files) is stable."""
    again = export_model(tiny_checkpoint, tmp_path / "again", log=None)
    assert again.model_id == load_model_dir(tiny_model_dir).model_id
