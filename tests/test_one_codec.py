"""One Codec, one answer: stream == one-shot under load()'s defaults, bad API input -> the right error subclass,
.apc version 2 written and version 1 still read. Runs on the bundled model (torch-free, a second to open)."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest

import apucodec
from apucodec.errors import ApucodecError, InputError, ModelError
from apucodec.io.apc_header import HEADER_SIZE
from apucodec.io.apc_reader import read_apc


@pytest.fixture(scope="module")
def codec():
    with apucodec.load(threads=1) as opened:
        yield opened


def _music(n: int, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    return (0.25 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
            + 0.03 * rng.standard_normal(n)).astype(np.float32)


def _stream(codec, x, rate, seed, channels=1):
    rng = np.random.default_rng(seed)
    codes, audio = [], []
    with codec.stream(sample_rate=rate, channels=channels) as s:
        start = 0
        while start < x.shape[0]:
            n = int(rng.integers(1, 5000))
            part = s.encode(x[start: start + n])
            codes.append(part)
            audio.append(s.decode(part))
            start += n
    tail = s.flush()  # after the with block, as the README shows
    return np.concatenate([*codes, tail.codes], axis=-1), np.concatenate([*audio, tail.audio])


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 16000])
def test_stream_equals_one_shot_under_the_defaults(codec, rate):
    assert codec.precision == "fp32" and codec.graph_precision() == "fp32"
    for seed, seconds in enumerate((1.37, 0.05)):  # a short input too: fewer samples than one step
        x = _music(int(seconds * rate) + seed, rate, seed)
        one_shot = codec.encode(x, sample_rate=rate)
        reference = codec.decode(one_shot)
        codes, audio = _stream(codec, x, rate, seed + rate)
        np.testing.assert_array_equal(codes, one_shot.array)
        assert audio.shape == reference.shape == (one_shot.length,)
        assert float(np.max(np.abs(audio - reference))) <= 1e-4


def test_stereo_stream_of_int16_equals_one_shot(codec):
    x = _music(30000, 48000, 3)
    pcm = (np.stack([x, -0.5 * x], axis=1) * 32767).astype(np.int16)
    one_shot = codec.encode(pcm, sample_rate=48000)
    codes, audio = _stream(codec, pcm, 48000, 9, channels=2)
    np.testing.assert_array_equal(codes, one_shot.array)
    assert audio.shape == (one_shot.length, 2)
    assert float(np.max(np.abs(audio - codec.decode(one_shot)))) <= 1e-4


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    return text


def test_bad_api_inputs_end_in_the_right_subclass_with_one_line(codec, tmp_path):
    x = _music(5000, 44100, 0)
    codes = codec.encode(x)
    bad_calls = [
        (InputError, "sample rate 0 Hz is outside", lambda: codec.encode(x, sample_rate=0)),
        (InputError, "sample rate 0 Hz is outside", lambda: codec.stream(sample_rate=0)),
        (InputError, "NaN", lambda: codec.stream().encode(np.array([0.1, np.nan], np.float32))),
        (InputError, "channels, this stream was opened for 1", lambda: codec.stream().encode(np.zeros((999, 2)))),
        (InputError, "not audio", lambda: codec.stream().encode(np.zeros(10, np.uint16))),
        (InputError, "code -1 is outside", lambda: codec.stream().decode(np.full((8, 2), -1))),
        (InputError, "code 2048 is outside", lambda: codec.stream().decode(np.full((8, 2), 2048))),
        (InputError, "not an integer code array", lambda: codec.stream().decode(np.zeros((8, 2)))),
        (InputError, "code -1 is outside", lambda: codec.decode(np.full((8, 10), -1), length=5000)),
        (InputError, "code 4096 is outside", lambda: codec.decode(np.full((8, 10), 4096), length=5000)),
        (InputError, "codebooks, this codec has 1..8", lambda: codec.decode(np.zeros((9, 10), int), length=5000)),
        (InputError, "do not cover", lambda: codec.decode(codes.array, length=99999)),
        (InputError, "precision must be one of", lambda: apucodec.load(precision="int4")),
        (InputError, "step_frames must be", lambda: codec.stream(step_frames=0)),
        (ModelError, "no encoder step graph of 7 frames", lambda: codec.stream(step_frames=7)),
        (ModelError, "", lambda: apucodec.load(tmp_path / "no-such-model")),
        (InputError, "format version 0 is not supported", lambda: apucodec.Codes.load(tmp_path / "x.apc")),
    ]
    (tmp_path / "x.apc").write_bytes(b"APC\x1a" + b"\0" * 100)
    for kind, fragment, call in bad_calls:
        with pytest.raises(ApucodecError) as caught:
            call()
        assert type(caught.value) is kind, (fragment, caught.value)
        assert re.search(re.escape(fragment), _one_line(caught.value)), caught.value


def test_a_flushed_stream_says_so(codec):
    s = codec.stream()
    s.encode(np.zeros(3000, np.float32))
    s.flush()
    with pytest.raises(InputError, match="flushed"):
        s.encode(np.zeros(10, np.float32))


def test_codes_say_where_they_came_from_and_v1_files_still_read(codec, tmp_path):
    codes = codec.encode(_music(20000, 44100, 1))
    codes.save(tmp_path / "v2.apc")
    data = (tmp_path / "v2.apc").read_bytes()
    assert struct.unpack_from("<HH", data, 4) == (2, HEADER_SIZE)
    header, array = read_apc(tmp_path / "v2.apc")
    sha = codec.model.files["encoder.s128"].sha256
    assert (header.precision, header.graph_sha256, header.channels) == ("fp32", sha, 1)
    np.testing.assert_array_equal(array, codes.array)
    # A version 1 file, built byte by byte from the v1 layout (72-byte header), not by this apucodec's writer.
    payload = data[HEADER_SIZE:-4]
    v1 = struct.pack("<4sHHIIBBHIIQQ16sQI", b"APC\x1a", 1, 72, 44100, 44100, 8, 11, 0, 2048, 512, codes.frames,
                     codes.length, codes.model_id.encode().ljust(16, b"\0"), codes.length, 0) + payload
    (tmp_path / "v1.apc").write_bytes(v1 + struct.pack("<I", zlib.crc32(v1)))
    old = apucodec.Codes.load(tmp_path / "v1.apc")
    np.testing.assert_array_equal(old.array, codes.array)
    assert (old.precision, old.graph_sha256, old.channels) == ("", "", 1)
    np.testing.assert_array_equal(codec.decode(old), codec.decode(codes))
