"""The streaming .apc reader: the CRC the writer records, chunks equal the whole file, the CRC checked after the
last chunk, truncation and trailing bytes found, the header checked against the file size before any code is
read."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

from apucodec.errors import ApucodecError
from apucodec.io.apc_reader import ApcReader, parse_apc
from apucodec.io.apc_writer import write_apc


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


def test_crc_of_a_written_file_is_what_the_reader_checks():
    data, _ = _apc(frames=5, n=1, codebook_size=2)
    (stored,) = struct.unpack("<I", data[-4:])
    assert zlib.crc32(data[:-4]) == stored
