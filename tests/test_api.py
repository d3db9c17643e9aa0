"""The public Python API: load, encode/decode arrays of any rate, channels and dtype, Codes, and live streams."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import apucodec
from apucodec.cli.main import cli
from apucodec.errors import ApucodecError, InputError

REPO = Path(__file__).resolve().parents[1]
OFFLINE = 8  # the checked-in model's offline step (tests/data/tiny-model; its live step is 4)


@pytest.fixture(scope="module")
def model_path(runtime_model):
    return runtime_model


@pytest.fixture(scope="module")
def codec(model_path):
    return apucodec.load(model_path, encoder_ep="cpu", decoder_ep="cpu", threads=1)


def _voice(n: int, rate: int = 44100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2
            + 0.02 * rng.standard_normal(n)).astype(np.float32)


def test_help_shows_the_api():
    assert "apucodec.load()" in apucodec.__doc__ and {"load", "Codec", "Codes"} <= set(apucodec.__all__)
    assert apucodec.load is apucodec.api.load and apucodec.Codes is apucodec.codes.Codes


def test_encode_decode_round_trip_has_the_input_length(codec):
    x = _voice(30001)
    codes = codec.encode(x)
    assert isinstance(codes, apucodec.Codes) and codes.array.shape == (4, -(-30001 // 512))
    assert codes.length == codes.input_length == 30001 and codes.model_id == codec.model.model_id
    y = codec.decode(codes)
    assert y.dtype == np.float32 and y.shape == (30001,)
    expected, _ = codec.run_array(x)
    np.testing.assert_array_equal(y, expected)


def test_integer_pcm_is_scaled_and_float64_accepted(codec):
    x = _voice(20000)
    pcm16 = np.round(x * 32768).astype(np.int16)
    pcm32 = pcm16.astype(np.int32) << 16
    ref = codec.encode(pcm16.astype(np.float32) / 32768).array
    np.testing.assert_array_equal(codec.encode(pcm16).array, ref)
    np.testing.assert_array_equal(codec.encode(pcm32).array, ref)
    np.testing.assert_array_equal(codec.encode(pcm16.astype(np.float64) / 32768).array, ref)
    u8 = (np.round(x * 127) + 128).astype(np.uint8)
    assert codec.encode(u8).frames == codec.encode(x).frames


def test_stereo_keeps_its_channels_each_coded_alone_in_either_layout(codec, caplog, tmp_path):
    left, right = _voice(22050, seed=1), _voice(22050, seed=2)
    codes = codec.encode(np.stack([left, right], axis=1))
    assert codes.channels == 2 and codes.array.shape == (2, 4, -(-22050 // 512)) and codes.length == 22050
    np.testing.assert_array_equal(codes.array[0], codec.encode(left).array)
    np.testing.assert_array_equal(codes.array[1], codec.encode(right).array)
    np.testing.assert_array_equal(codec.encode(np.stack([left, right])).array, codes.array)  # [channels, n]
    audio = codec.decode(codes)
    assert audio.shape == (22050, 2)
    np.testing.assert_array_equal(audio[:, 1], codec.decode(codec.encode(right)))
    codes.save(tmp_path / "stereo.apc")  # no extra arguments
    again = apucodec.Codes.load(tmp_path / "stereo.apc")
    np.testing.assert_array_equal(again.array, codes.array)
    assert (again.channels, again.precision, again.graph_sha256) == (2, "fp32", codes.graph_sha256)
    mono = ((left.astype(np.float64) + right) / 2).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="apucodec"):
        downmixed = codec.encode(np.stack([left, right], axis=1), mono=True)
    assert any("2 channels downmixed to mono" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(downmixed.array, codec.encode(mono).array)


def test_any_rate_is_resampled_and_restored(codec, caplog):
    x = _voice(48000, rate=48000)
    with caplog.at_level(logging.INFO, logger="apucodec"):
        codes = codec.encode(x, sample_rate=48000)
    assert any("resampled from 48000 Hz to 44100 Hz" in r.getMessage() for r in caplog.records)
    assert codes.length == 44100 and codes.input_rate == 48000 and codes.input_length == 48000
    assert codec.decode(codes).shape == (44100,)
    assert codec.decode(codes, sample_rate=48000).shape == (48000,)


@pytest.mark.parametrize("bad,fragment", [
    (np.array([0.1, np.nan, 0.2], dtype=np.float32), "NaN or infinite"),
    (np.zeros((2, 3, 4), dtype=np.float32), "expected a 1-D (mono) or 2-D"),
    (np.zeros(0, dtype=np.float32), "no audio samples"),
    (np.array(["a", "b"]), "are not audio"),
    (np.zeros((100, 100), dtype=np.float32), "cannot tell channels from samples"),
])
def test_bad_arrays_are_refused_with_one_line(codec, bad, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)):
        codec.encode(bad)
    with pytest.raises(InputError, match="sample rate 0 Hz is outside 1000..1000000 Hz"):
        codec.encode(_voice(100), sample_rate=0)


def test_codes_from_another_model_are_refused(codec):
    codes = codec.encode(_voice(5000))
    other = apucodec.Codes(codes.array, codes.length, codes.sample_rate, codes.input_rate, codes.input_length,
                           "0123456789abcdef")
    with pytest.raises(ApucodecError, match="made by model 0123456789abcdef"):
        codec.decode(other)
    assert codec.decode(other, force=True).shape == (5000,)


@pytest.mark.parametrize("step", [4, OFFLINE])
def test_stream_pieces_of_random_sizes_equal_the_one_shot_result(model_path, step):
    """Bit for bit against one-shot encode/decode through the same step graphs. (Graphs of another step size
    agree to float rounding, ~1e-7, which can flip a code where two codewords tie exactly: this random tiny
    model's codebooks have such near-duplicates.)"""
    codec = apucodec.load(model_path, encoder_ep="cpu", decoder_ep="cpu", threads=1, step_frames=step)
    x = _voice(3 * 44100 + 333, seed=step)
    one_shot = codec.encode(x)
    rng = np.random.default_rng(step)
    audio, codes = [], []
    with codec.stream(step_frames=step) as s:
        start = 0
        while start < x.size:
            n = int(rng.integers(1, 4000))
            part = s.encode(x[start: start + n])
            codes.append(part)
            audio.append(s.decode(part))
            start += n
        tail = s.flush()
    streamed = np.concatenate([*audio, tail.audio])
    np.testing.assert_array_equal(np.concatenate([*codes, tail.codes], axis=1), one_shot.array)
    np.testing.assert_array_equal(streamed, codec.decode(one_shot))
    with pytest.raises(ApucodecError, match="flushed"):
        s.encode(x[:10])


def test_encode_only_stream_and_a_resampled_stream(codec):
    x = _voice(20000)
    with codec.stream(step_frames=OFFLINE) as s:
        parts = [s.encode(x[:7000]), s.encode(x[7000:])]
        tail = s.flush()
    np.testing.assert_array_equal(np.concatenate([*parts, tail.codes], axis=1), codec.encode(x).array)
    assert tail.audio.size == 0
    y = _voice(24000, rate=48000)
    with codec.stream(sample_rate=48000) as s:
        out = [s.process(y[i: i + 999]) for i in range(0, y.size, 999)]
        out.append(s.flush().audio)
    assert abs(sum(p.size for p in out) - 22050) <= 1


def test_stream_command_equals_run_and_reports_latency(model_path, tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, _voice(2 * 44100 + 17), 44100, subtype="FLOAT")
    cpu = ["--model", str(model_path), "--encoder-ep", "cpu", "--decoder-ep", "cpu"]
    streamed = CliRunner().invoke(cli, ["stream", str(src), str(tmp_path / "s.wav"), "--realtime", "--json", *cpu])
    assert streamed.exit_code == 0, streamed.output
    report = json.loads(streamed.stdout)
    assert report["step_frames"] == 4 and report["realtime"] is True and report["steps"] == -(-(2 * 44100 + 17)
                                                                                               // 2048)
    streaming = json.loads((model_path / "manifest.json").read_text())["streaming"]
    assert report["algorithmic_latency_ms"] == pytest.approx(streaming["algorithmic_latency"]["4"]["ms"], abs=0.01)
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max"} and report["deadline_misses"] >= 0
    # Latency can never beat the algorithmic latency (minus one sample): that would mean seeing the future.
    assert report["latency_ms"]["p50"] >= report["algorithmic_latency_ms"] - 1000 / 44100 - 1e-6
    ran = CliRunner().invoke(cli, ["run", str(src), str(tmp_path / "r.wav"), *cpu])
    assert ran.exit_code == 0, ran.output
    a, _ = sf.read(tmp_path / "s.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "r.wav", dtype="int16")
    assert a.shape == b.shape and np.max(np.abs(a.astype(int) - b)) <= 1  # PCM_16 of the same float output


def test_live_without_audio_devices_says_so_in_one_line():
    result = CliRunner().invoke(cli, ["stream", "--live"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --live")


def test_the_example_runs(model_path):
    done = subprocess.run([sys.executable, str(REPO / "examples" / "python_api.py"), str(model_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert re.search(r"max \|stream - one-shot\| = (0\.00e\+00|\d\.\d\de-0[5-9])", done.stdout), done.stdout
