"""The bundled default model: found without --model, intact, and it actually reconstructs audio."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.dsp.metrics import mel_distance
from apucodec.io.audio_read import read_audio
from apucodec.model.directory import BUNDLED_DIR, ENV_VAR, load_model_dir
from apucodec.model.location import locate_model

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello.wav"


@pytest.fixture
def no_model_configured(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./apucodec-model here
    monkeypatch.delenv(ENV_VAR, raising=False)
    return tmp_path


def test_bundled_model_is_the_fallback_and_passes_validation(no_model_configured):
    path = locate_model(None).path
    assert path == BUNDLED_DIR
    model = load_model_dir(path)  # checks every file's sha256
    assert model.is_bundled and "bundled default model" in model.label
    cfg = model.config
    assert (cfg.sample_rate, cfg.hop_length, cfg.latent_dim, cfg.n_codebooks, cfg.codebook_size) == (
        44100, 512, 128, 8, 2048)
    # Step graphs at the live and the offline step, for both stages, sharing one state layout per stage.
    for stage in ("encoder", "decoder"):
        assert model.step_sizes(stage) == [4, 128]
        assert {g.state_size for g in model.step_graphs(stage)} == {model.streaming(stage).state_size}
    # The NPU encoder: the offline step graph quantized (XINT8), sharing the FP32 graphs' state layout.
    int8 = model.step_graph("encoder", 128, "npu-int8")
    assert int8 is not None and int8.state_size == model.streaming("encoder").state_size
    # CPU INT8 encoder and decoder at every step (`apucodec quantize --target cpu`), same state layouts: a stream
    # of an INT8 Codec runs INT8 graphs too.
    for stage in ("encoder", "decoder"):
        for step in (4, 128):
            cpu_int8 = model.step_graph(stage, step, "cpu-int8")
            assert cpu_int8 is not None and cpu_int8.state_size == model.streaming(stage).state_size
    # Small enough for the wheel. Issue 8 set ~15 MB for the format-1 files (14.6 MB). Format 2, rebuilt by
    # scripts/rebuild_bundled_model.py: the FP32 step graphs of a stage share one weights file (8.1 MB each, 3.3 MB
    # of it the 128-frame bounds masks; the four FP32 graph files were 22.2 MB before), codebooks 4.2 MB, CPU INT8
    # encoder/decoder at both steps 13.2 MB, NPU INT8 encoder at both steps 6.3 MB: 40.2 MB in all.
    total = sum(f.stat().st_size for f in BUNDLED_DIR.iterdir() if f.is_file())
    assert total < 41_000_000
    assert (BUNDLED_DIR / "MODEL.md").is_file()


def test_bundled_weights_are_the_recovered_original_ones(no_model_configured):
    """The step graphs carry the weights recovered from the format-1 model ea4c4503deae223b (scripts/
    recover_bundled_model.py), verified against its graphs, and the manifest says so."""
    model = load_model_dir(BUNDLED_DIR)
    source = model.manifest.export.source
    recovered = source["recovered_from"]
    assert source["format"] == "recovered" and recovered["model_id"] == "ea4c4503deae223b"
    assert source["original"]["step"] == 1782
    for window in recovered["verification"]["windows"].values():
        assert min(stage["snr_db"] for stage in window.values()) > 100
    # The codebooks were float16 on disk before and after: the file is the same bytes.
    assert model.files["codebooks"].sha256 == recovered["files"]["codebooks.npy"]
    for role in ("encoder.s4", "encoder.s128", "decoder.s4", "decoder.s128"):
        assert model.manifest.export.parity[role]["snr_db"] >= 80
    latency = model.manifest.streaming.algorithmic_latency["4"]
    assert latency["samples"] == (model.streaming("encoder").delay_samples + model.streaming("decoder").delay_samples
                                  + 4 * model.hop)


def test_quantize_encoder_never_targets_the_bundled_copy(no_model_configured):
    assert locate_model(None, writing=True).path == Path("apucodec-model")


def test_run_with_no_model_option_uses_the_bundled_model(no_model_configured):
    out = no_model_configured / "out.wav"
    result = CliRunner().invoke(cli, ["run", str(EXAMPLE), str(out), "--decoder-ep", "cpu"])
    assert result.exit_code == 0, result.output
    assert "bundled default model" in result.output
    reference, _ = read_audio(EXAMPLE, 44100)  # the bundled model codes at 44.1 kHz
    decoded, _ = read_audio(out, 44100)
    assert decoded.shape == reference.shape
    # A trained codec keeps the spectrum: far closer to the input than noise at a similar level is.
    noise = np.random.default_rng(0).standard_normal(reference.size).astype(np.float32) * reference.std()
    assert mel_distance(reference, decoded, 44100) < 0.6 * mel_distance(reference, noise, 44100)
