"""Units behind the hardening battery: API array inputs, the output writer, the streaming .apc reader, model checks."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from apucodec.errors import ApucodecError
from apucodec.io.apc_file import parse_apc, write_apc
from apucodec.io.apc_reader import ApcReader
from apucodec.io.arrays import checked_array
from apucodec.io.outputs import open_binary_output, open_output
from apucodec.io.resample import check_rate, resample_as_stream
from apucodec.model.checks import check_file_name, check_no_external_data
from tests.hardening_helpers import listing

# ---- API array inputs ------------------------------------------------------------------------------------------------


def _checked(array: object) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    return checked_array(array, "<array>", notes), notes


def test_int_pcm_is_scaled_and_float64_cast():
    samples, notes = _checked(np.array([0, 16384, -32768, 32767], dtype=np.int16))
    np.testing.assert_allclose(samples[:, 0], [0.0, 0.5, -1.0, 32767 / 32768])
    assert samples.dtype == np.float32 and "int16 PCM" in notes[0]
    assert _checked(np.array([2**30], dtype=np.int32))[0][0, 0] == pytest.approx(0.5)
    assert _checked(np.array([128, 192, 0], dtype=np.uint8))[0][:, 0].tolist() == [0.0, 0.5, -1.0]
    assert _checked(np.array([64], dtype=np.int8))[0][0, 0] == 0.5
    samples, notes = _checked(np.array([0.25, -0.5]))
    assert samples.dtype == np.float32 and samples[:, 0].tolist() == [0.25, -0.5] and notes == []


def test_channels_are_read_in_either_layout():
    left, right = np.full(1000, 0.5, np.float32), np.full(1000, -0.25, np.float32)
    last, notes = _checked(np.stack([left, right], axis=1))  # [n, 2], soundfile's layout
    first, first_notes = _checked(np.stack([left, right]))  # [2, n], torch's layout
    assert last.shape == (1000, 2) and notes == []
    np.testing.assert_array_equal(first, last)
    assert any("[channels, samples]" in n for n in first_notes)
    mono_column, _ = _checked(left[:, None])
    assert mono_column.shape == (1000, 1)


@pytest.mark.parametrize(("value", "fragment"), [
    (np.float32(0.5), "0-D"),
    (np.zeros((2, 3, 100), np.float32), "3-D"),
    (np.zeros((4, 4), np.float32), "cannot tell channels"),
    (np.zeros(0, np.float32), "no audio samples"),
    (np.array([0.1, np.nan], np.float32), "NaN or infinite"),
    (np.array([0.1, np.inf]), "NaN or infinite"),
    (np.array([1e300, 0.0]), "NaN or infinite"),  # overflows float32
    (np.array([1, 2], dtype=np.int64), "int64"),
    (np.array(["a", "b"]), "not audio"),
])
def test_arrays_that_are_not_audio_are_refused(value, fragment):
    with pytest.raises(ApucodecError) as info:
        _checked(value)
    assert fragment in str(info.value) and str(info.value).startswith("<array>: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(("rate", "fragment"), [(0, "0 Hz is outside 1000..1000000 Hz"),
                                                (44100.0, "must be an integer"), (True, "must be an integer")])
def test_rates_that_are_not_sample_rates_are_refused(rate, fragment):
    with pytest.raises(ApucodecError) as info:
        check_rate(rate)
    assert fragment in str(info.value) and str(info.value).startswith("<array>: ") and "\n" not in str(info.value)


def test_other_rates_are_resampled():
    samples = resample_as_stream(np.zeros(48000, np.float32) + 0.1, 48000, 44100)
    assert abs(samples.size - 44100) <= 1 and samples.dtype == np.float32


# ---- outputs ---------------------------------------------------------------------------------------------------------

def test_output_has_no_name_until_committed_and_honours_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with open_output(tmp_path / "a.bin") as out:
            out.raw.write(b"hello")
            assert listing(tmp_path) == []  # unnamed while being written
        assert (tmp_path / "a.bin").read_bytes() == b"hello"
        assert stat.S_IMODE(os.stat(tmp_path / "a.bin").st_mode) == 0o640
    finally:
        os.umask(old)
    with pytest.raises(RuntimeError), open_output(tmp_path / "a.bin") as out:
        out.raw.write(b"replacement")
        raise RuntimeError("failed mid-write")
    assert (tmp_path / "a.bin").read_bytes() == b"hello" and listing(tmp_path) == ["a.bin"]


def test_named_temp_fallback_cleans_up(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)  # as on macOS or a filesystem without O_TMPFILE
    with pytest.raises(KeyboardInterrupt), open_output(tmp_path / "b.bin") as out:
        out.raw.write(b"partial")
        assert len(listing(tmp_path)) == 1  # the named temp exists while writing
        raise KeyboardInterrupt
    assert listing(tmp_path) == []
    with open_output(tmp_path / "b.bin") as out:
        out.raw.write(b"whole")
    assert listing(tmp_path) == ["b.bin"] and (tmp_path / "b.bin").read_bytes() == b"whole"


def test_symlinked_output_replaces_its_target(tmp_path):
    (tmp_path / "real.bin").write_bytes(b"old")
    os.symlink(tmp_path / "real.bin", tmp_path / "link.bin")
    with open_binary_output(tmp_path / "link.bin") as fh:
        fh.write(b"new")
    assert (tmp_path / "link.bin").is_symlink() and (tmp_path / "real.bin").read_bytes() == b"new"


# ---- streaming .apc reader -------------------------------------------------------------------------------------------

def _apc(frames: int = 300, n: int = 3, codebook_size: int = 1000) -> tuple[bytes, np.ndarray]:
    codes = np.random.default_rng(frames).integers(0, codebook_size, size=(n, frames))
    buf = io.BytesIO()
    write_apc(buf, codes, original_length=frames * 512 - 100, sample_rate=44100, input_rate=44100,
              codebook_size=codebook_size, hop=512, model_id="abc")
    return buf.getvalue(), codes


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_reader_chunks_equal_the_whole_file(chunk):
    data, codes = _apc()
    reader = ApcReader(io.BytesIO(data), "x.apc", len(data))
    pieces = list(reader.chunks(chunk))
    assert all(p.shape[1] <= chunk for p in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), codes)
    np.testing.assert_array_equal(parse_apc(data)[1], codes)


def test_reader_checks_the_crc_after_the_last_chunk():
    data, _ = _apc()
    corrupted = bytearray(data)
    corrupted[-10] ^= 0x01
    reader = ApcReader(io.BytesIO(bytes(corrupted)), "x.apc", len(data))
    chunks = reader.chunks(50)
    next(chunks)  # streaming: the first chunk arrives before the end is known
    with pytest.raises(ApucodecError, match="x.apc: .*CRC32 mismatch"):
        list(chunks)


def test_reader_without_a_size_finds_truncation_and_trailing_bytes():
    data, _ = _apc()
    with pytest.raises(ApucodecError, match="ends early|size does not match"):
        list(ApcReader(io.BytesIO(data[:-40]), "x.apc", None).chunks(64))
    with pytest.raises(ApucodecError, match="trailing"):
        list(ApcReader(io.BytesIO(data + b"\0"), "x.apc", None).chunks(64))


def test_header_is_checked_against_the_file_size_before_reading_codes():
    data, _ = _apc()
    body = bytearray(data[:72])
    struct.pack_into("<Q", body, 28, 2**40)  # frames
    struct.pack_into("<Q", body, 36, 2**40 * 512)  # original length, consistent with the frames
    struct.pack_into("<Q", body, 60, 2**40 * 512)  # input length, consistent too
    bomb = bytes(body) + data[72:]
    with pytest.raises(ApucodecError, match="payload is"):
        ApcReader(io.BytesIO(bomb), "x.apc", len(bomb))


# ---- model checks ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x.npy", "/etc/passwd", "sub/x.npy", "a\\b.npy", ".", "..", "", "x\0y", 5, None])
def test_only_plain_file_names(name):
    with pytest.raises(ApucodecError, match="files.codebooks.name"):
        check_file_name(name, "codebooks", Path("m/manifest.json"))
    assert check_file_name("codebooks.npy", "codebooks", Path("m/manifest.json")) == "codebooks.npy"


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_external_data_is_found_anywhere_a_tensor_can_be(tmp_path):
    tensor_external = _field(13, _field(1, b"location") + _field(2, b"w.bin"))
    tensor_location = bytes([14 << 3, 1])  # data_location = EXTERNAL
    plain_tensor = _field(9, b"\0" * 8)  # raw_data only
    initializer = _field(7, _field(5, tensor_external))  # model.graph.initializer
    in_attribute = _field(7, _field(1, _field(5, _field(5, tensor_location))))  # graph.node.attribute.t
    in_subgraph = _field(7, _field(1, _field(5, _field(6, _field(5, tensor_external)))))  # attribute.g.initializer
    for name, data in {"initializer": initializer, "attribute": in_attribute, "subgraph": in_subgraph}.items():
        with pytest.raises(ApucodecError, match="external data"):
            check_no_external_data(_written(tmp_path / f"{name}.onnx", data))
    check_no_external_data(_written(tmp_path / "plain.onnx", _field(7, _field(5, plain_tensor))))  # accepted
    with pytest.raises(ApucodecError, match="not an ONNX model"):
        check_no_external_data(_written(tmp_path / "short.onnx", b"\x3a\x7f"))  # a field longer than the file


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_crc_of_a_written_file_is_what_the_reader_checks():
    data, _ = _apc(frames=5, n=1, codebook_size=2)
    (stored,) = struct.unpack("<I", data[-4:])
    assert zlib.crc32(data[:-4]) == stored
