"""The runtime end to end on the checked-in tiny model (no torch): encode/decode vs run, streaming files, bounded
memory, and clean failure (no partial output) mid-run. Streamed output vs the whole-file PyTorch codec is in
test_runtime_vs_pytorch.py."""

from __future__ import annotations

import math
import threading
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from apucodec.errors import ApucodecError
from apucodec.io.apc_header import HEADER_SIZE
from apucodec.io.apc_reader import read_apc
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.lanes import Lanes
from tests.audio_factory import chirp, noise_bursts, speech_like, tone
from tests.runtime_models import CPU_ONLY


@pytest.fixture(scope="module")
def codec(runtime_model):
    return CodecEngine.open(runtime_model, CPU_ONLY, warn=None)


def _clip(seconds: float = 3.0) -> np.ndarray:
    # An odd length (not a multiple of the hop) exercises the padded last frame and the trimmed last window.
    n = int(seconds * 44100) + 123
    x = np.concatenate([speech_like(seconds), chirp(0.01)])[:n] + 0.5 * noise_bursts(seconds + 0.01)[:n]
    return x.astype(np.float32)


def test_encode_then_decode_equals_run_bit_for_bit(codec):
    audio = _clip(2.0)
    out, _ = codec.run_array(audio)
    codes, enc = codec.encode_array(audio)
    decoded, dec = codec.decode_codes(codes, audio.size)
    np.testing.assert_array_equal(decoded, out)
    assert codes.shape == (4, math.ceil(audio.size / 512)) and codes.dtype == np.int32
    assert enc.kind == "encode" and dec.kind == "decode"


def test_fewer_codebooks(codec):
    audio = _clip(1.0)
    codes, result = codec.encode_array(audio, n_codebooks=2)
    assert codes.shape[0] == 2
    assert result.bitrate == pytest.approx(44100 / 512 * 2 * 6)  # tiny: 64 codes = 6 bits
    full, _ = codec.run_array(audio)
    low, _ = codec.run_array(audio, n_codebooks=2)
    assert not np.array_equal(full, low)
    with pytest.raises(ApucodecError, match="1..4"):
        codec.run_array(audio, n_codebooks=5)


def test_timings_cover_every_stage_and_block(codec):
    audio = _clip(2.0)
    _, result = codec.run_array(audio)
    blocks = -(-audio.size // (1 << 16)) + 1  # the array's blocks, then the end of stream (flush)
    for stage in ("encoder", "rvq", "decoder"):
        indices = sorted({t.index for t in result.timings if t.stage == stage})
        assert indices == list(range(blocks)), stage
    assert all(t.end >= t.start >= 0 for t in result.timings)
    assert result.wall_seconds >= max(t.end for t in result.timings) - 1e-3
    assert result.placement.stage("encoder").ran_on == "CPUExecutionProvider"
    assert "RTF" in result.summary() and "kbps" in result.summary()


def test_files_stream_exactly_and_round_trip_through_apc(codec, tmp_path):
    audio = _clip(2.5)
    src = tmp_path / "in.wav"
    sf.write(src, audio, 44100, subtype="FLOAT")
    out_run, apc, out_dec = tmp_path / "run.wav", tmp_path / "x.apc", tmp_path / "dec.wav"
    run = codec.run_file(src, out_run)
    enc = codec.encode_file(src, apc)
    codec.decode_file(apc, out_dec)
    a, rate = sf.read(out_run, dtype="float32")
    b, _ = sf.read(out_dec, dtype="float32")
    assert rate == 44100 and a.shape == audio.shape
    np.testing.assert_array_equal(a, b)  # encode -> decode == run
    expected, _ = codec.run_array(audio)
    assert np.max(np.abs(a - np.clip(expected, -1, 1))) <= 1 / 32768 + 1e-7  # PCM_16 output
    header, codes = read_apc(apc)
    frames = math.ceil(audio.size / 512)
    assert header.frames == frames and header.original_length == audio.size
    assert apc.stat().st_size == HEADER_SIZE + math.ceil(frames * 4 * 6 / 8) + 4
    assert run.samples == enc.samples == audio.size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dec.wav", "in.wav", "run.wav", "x.apc"]  # no temp left


def test_resampled_stereo_input_and_match_input(codec, tmp_path):
    left = tone(1.5, 440.0, rate=48000)
    stereo = np.stack([left, 0.5 * left], axis=1)
    src = tmp_path / "in.flac"
    sf.write(src, stereo, 48000)
    result = codec.run_file(src, tmp_path / "a.wav")
    assert any("downmixed" in n for n in result.notes) and any("resampled" in n for n in result.notes)
    assert sf.info(tmp_path / "a.wav").samplerate == 44100
    assert sf.info(tmp_path / "a.wav").frames == result.samples == round(stereo.shape[0] * 44100 / 48000)
    codec.run_file(src, tmp_path / "b.wav", match_input=True)
    codec.encode_file(src, tmp_path / "b.apc")
    codec.decode_file(tmp_path / "b.apc", tmp_path / "c.wav", match_input=True)
    b, rate_b = sf.read(tmp_path / "b.wav")
    c, rate_c = sf.read(tmp_path / "c.wav")
    assert rate_b == rate_c == 48000 and b.shape == c.shape == (stereo.shape[0],)
    np.testing.assert_array_equal(b, c)


def test_decode_refuses_another_models_file_unless_forced(codec, tmp_path):
    from apucodec.io.apc_writer import write_apc

    apc = tmp_path / "other.apc"
    with open(apc, "w+b") as fh:
        write_apc(fh, np.zeros((4, 10), dtype=np.int64), original_length=5000, sample_rate=44100, input_rate=44100,
                  codebook_size=64, hop=512, model_id="feedfacefeedface")
    with pytest.raises(ApucodecError, match="--force"):
        codec.decode_file(apc, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
    result = codec.decode_file(apc, tmp_path / "x.wav", force=True)
    assert sf.info(tmp_path / "x.wav").frames == 5000 and "--force" in result.notes[0]
    with open(apc, "w+b") as fh:
        write_apc(fh, np.zeros((4, 10), dtype=np.int64), original_length=5000, sample_rate=44100, input_rate=44100,
                  codebook_size=2048, hop=512, model_id=codec.model.model_id)
    with pytest.raises(ApucodecError, match="codebooks of 2048"):
        codec.decode_file(apc, tmp_path / "y.wav", force=True)


def test_nan_mid_file_fails_cleanly(codec, tmp_path):
    audio = _clip(3.0)
    audio[100_000] = np.nan  # in the second soundfile block: the pipeline is already writing
    src = tmp_path / "nan.wav"
    sf.write(src, audio, 44100, subtype="FLOAT")
    with pytest.raises(ApucodecError, match="NaN"):
        codec.run_file(src, tmp_path / "out.wav")
    with pytest.raises(ApucodecError, match="NaN"):
        codec.encode_file(src, tmp_path / "out.apc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav"]
    assert not any(t.name.startswith("apucodec-") for t in threading.enumerate())


def test_interrupt_mid_run_leaves_no_file_and_no_threads(codec, tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, _clip(3.0), 44100)
    calls = []

    def progress(n):
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        codec.run_file(src, tmp_path / "out.wav", progress=progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]
    assert not any(t.name.startswith("apucodec-") for t in threading.enumerate())


def test_lane_failure_is_reraised_and_stops_the_others():
    lanes = Lanes(depth=1)
    produced = []

    def source():
        for i in range(1000):
            produced.append(i)
            yield i

    def failing(items):
        for i in items:
            if i == 5:
                raise RuntimeError("boom")
            yield i

    with pytest.raises(RuntimeError, match="boom"):
        lanes.run(source, [("fail", failing), ("pass", lambda items: iter(items))], lambda item: None)
    assert len(produced) < 20  # the source stopped soon after: bounded queues, abort flag


def test_memory_does_not_grow_with_length(codec, tmp_path):
    """Python-side peak allocation for a 4x longer file stays the same: only steps and blocks are in flight."""
    peaks = []
    for seconds in (10.0, 40.0):
        src = tmp_path / f"in{seconds:.0f}.wav"
        n = int(seconds * 44100)
        with sf.SoundFile(src, "w", 44100, 1, "PCM_16") as fh:  # written in blocks: the test itself stays small
            for start in range(0, n, 44100):
                fh.write(tone(min(1.0, (n - start) / 44100), 200 + start / 441))
        tracemalloc.start()
        try:
            codec.run_file(src, tmp_path / "out.wav")
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    whole_file_bytes = 40.0 * 44100 * 4
    assert peaks[1] < 1.3 * peaks[0] + 256 * 1024, peaks
    assert peaks[1] < whole_file_bytes / 2, peaks
