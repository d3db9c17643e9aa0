"""`apucodec eval`: per-clip numbers that agree with an independent computation, means, bitrate, Opus."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from apucodec.model.directory import load_model_dir
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.tools.eval_quality import evaluate, systems_for
from apucodec.tools.eval_report import format_result
from tests.audio_factory import write_folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("eval_clips"), seconds=1.5, count=2, kind="mixed")


def si_sdr_by_correlation(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SI-SDR from the correlation coefficient: the projection's share of the zero-mean estimate's energy is rho^2,
    the residual's 1 - rho^2, so SI-SDR = 10 log10(rho^2 / (1 - rho^2)) (a different route to the same number)."""
    rho = np.corrcoef(reference.astype(np.float64), estimate.astype(np.float64))[0, 1]
    return float(10 * np.log10(rho**2 / (1 - rho**2)))


def test_eval_agrees_with_an_independent_si_sdr(runtime_model, clips):
    systems = systems_for([runtime_model], [None, 2], [], settings=SessionSettings(encoder_eps=("cpu",),
                                                                                    decoder_eps=("cpu",)))
    result = evaluate(clips, systems, use_visqol=False)
    name = systems[0].name
    assert list(result.systems) == [name, f"{name.split()[0]} 2cb"]
    first = sorted(clips.iterdir())[0]
    reference, rate = sf.read(first, dtype="float32")
    assert rate == 44100
    model = load_model_dir(runtime_model)
    decoded, _ = CodecEngine(model, SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",)), warn=None) \
        .run_array(reference)
    row = result.systems[name][0]
    assert row["clip"] == first.name
    assert row["si_sdr"] == pytest.approx(si_sdr_by_correlation(reference, decoded), abs=1e-3)
    bits = model.config.n_codebooks * np.log2(model.config.codebook_size) * 44100 / model.config.hop_length
    assert row["kbps"] == pytest.approx(bits / 1000)
    two = result.systems[f"{name.split()[0]} 2cb"][0]
    assert two["kbps"] == pytest.approx(2 * np.log2(model.config.codebook_size) * 44100 / model.config.hop_length
                                        / 1000)
    means = result.means()[name]
    assert means["si_sdr"] == pytest.approx(np.mean([r["si_sdr"] for r in result.systems[name]]))
    text = format_result(result)
    assert "SI-SDR dB per clip" in text and first.name in text and "mean over 2 clips" in text


@pytest.mark.skipif(shutil.which("opusenc") is None, reason="opus-tools not installed (.ci/run installs it)")
def test_cli_eval_json_with_opus(runtime_model, clips):
    done = subprocess.run([sys.executable, "-m", "apucodec", "eval", str(clips), "--model", str(runtime_model),
                           "--opus", "12", "--no-visqol", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data["mean"]) == {runtime_model.name, "opus 12k"} and len(data["clips"]) == 2
    opus = data["mean"]["opus 12k"]
    assert 6 < opus["kbps"] < 30  # the file's real size, Ogg pages included
    # Opus at 12 kbps reproduces generated tones and noise far better than a tiny codec with random weights
    assert opus["si_sdr"] > 2 and opus["si_sdr"] > data["mean"][runtime_model.name]["si_sdr"] + 5


def test_cli_eval_bad_input(tmp_path):
    done = subprocess.run([sys.executable, "-m", "apucodec", "eval", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error:") and "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "apucodec", "eval", str(tmp_path), "--codebooks", "99"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error:"), done.stderr
