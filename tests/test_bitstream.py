"""The .apc container: exact round trips, exact sizes, and refusal of every truncated or corrupted file."""

from __future__ import annotations

import contextlib
import io
import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apucodec.errors import ApucodecError
from apucodec.io.apc_header import HEADER_SIZE, MAGIC
from apucodec.io.apc_reader import parse_apc, read_apc
from apucodec.io.apc_writer import ApcWriter, BitPacker, write_apc


def _encode(codes: np.ndarray, length: int, codebook_size: int = 2048, hop: int = 512, model_id: str = "0123abcd"):
    buf = io.BytesIO()
    header = write_apc(buf, codes, original_length=length, sample_rate=44100, input_rate=48000,
                       codebook_size=codebook_size, hop=hop, model_id=model_id,
                       input_length=round(length * 48000 / 44100) + 1)
    return buf.getvalue(), header


def _random_file(seed: int = 0, n: int = 8, frames: int = 37, codebook_size: int = 2048):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, codebook_size, size=(n, frames))
    length = frames * 512 - int(rng.integers(0, 512))
    return codes, length, *_encode(codes, length, codebook_size)


def test_round_trip_and_exact_size_at_11_bits():
    codes, length, data, header = _random_file()
    assert header.bits_per_code == 11
    assert len(data) == HEADER_SIZE + math.ceil(37 * 8 * 11 / 8) + 4
    parsed, decoded = parse_apc(data)
    np.testing.assert_array_equal(decoded, codes)
    assert parsed == header
    expected = (length, round(length * 48000 / 44100) + 1, 48000)
    assert (parsed.original_length, parsed.input_length, parsed.input_rate) == expected
    assert parsed.model_id == "0123abcd"


@pytest.mark.parametrize("codebook_size", [2, 3, 64, 1000, 2048, 4096])
@pytest.mark.parametrize("n", [1, 3, 8])
def test_round_trip_any_width(codebook_size, n):
    codes, _, data, header = _random_file(seed=codebook_size + n, n=n, frames=13, codebook_size=codebook_size)
    assert header.bits_per_code == max(1, math.ceil(math.log2(codebook_size)))
    np.testing.assert_array_equal(parse_apc(data)[1], codes)


def test_streamed_writes_equal_one_write():
    codes, length, whole, _ = _random_file(seed=5, n=3, frames=50)
    buf = io.BytesIO()
    writer = ApcWriter(buf, sample_rate=44100, input_rate=48000, n_codebooks=3, codebook_size=2048, hop=512,
                       model_id="0123abcd")
    for start, stop in [(0, 1), (1, 8), (8, 8), (8, 29), (29, 50)]:  # odd splits exercise the carried bits
        writer.write(codes[:, start:stop])
    writer.close(length, round(length * 48000 / 44100) + 1)
    assert buf.getvalue() == whole


def test_bit_packer_is_msb_first():
    packer = BitPacker(11)
    data = packer.pack(np.array([0b10000000001, 0b01111111111])) + packer.flush()
    assert data == bytes([0b10000000, 0b00101111, 0b11111100])
    file, _ = _encode(np.array([[0b10000000001], [0b01111111111]]), 512)  # the reader unpacks what it packed
    assert file[HEADER_SIZE:HEADER_SIZE + 3] == data
    np.testing.assert_array_equal(parse_apc(file)[1][:, 0], [0b10000000001, 0b01111111111])


def test_expected_bitrate_of_the_spec():
    # 44100 / 512 frames/s x 8 codebooks x 11 bits = 7579 bit/s; one minute of codes:
    frames = math.ceil(60 * 44100 / 512)
    codes = np.zeros((8, frames), dtype=np.int64)
    data, _ = _encode(codes, 60 * 44100)
    payload_bits = (len(data) - HEADER_SIZE - 4) * 8
    assert abs(payload_bits / 60 - 7579) < 2


def test_writer_checks_length_and_codes():
    buf = io.BytesIO()
    writer = ApcWriter(buf, sample_rate=44100, input_rate=44100, n_codebooks=2, codebook_size=64, hop=512,
                       model_id="x")
    with pytest.raises(ValueError, match="range"):
        writer.write(np.array([[64], [0]]))
    writer.write(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="cover"):
        writer.close(512 * 5, 512 * 5)


def _refuse(data: bytes) -> str:
    with pytest.raises(ApucodecError) as info:
        parse_apc(data, "x.apc")
    message = str(info.value)
    assert message.startswith("x.apc: ") and "\n" not in message
    return message


def test_specific_corruptions_are_named():
    codes, length, data, _ = _random_file()
    assert "magic" in _refuse(b"RIFF" + data[4:])
    assert "CRC32" in _refuse(data[:-1] + bytes([data[-1] ^ 1]))
    assert "CRC32" in _refuse(data[:HEADER_SIZE + 5] + bytes([data[HEADER_SIZE + 5] ^ 0x10]) + data[HEADER_SIZE + 6:])
    assert "truncated" in _refuse(data[:10])
    assert "version" in _refuse(data[:4] + struct.pack("<H", 9) + data[6:])
    # A header that lies but carries a valid CRC (a buggy writer, not bit rot) is still refused, field by field.
    body = bytearray(data[:-4])
    struct.pack_into("<Q", body, 28, 1000)  # frames
    assert "frames" in _refuse(bytes(body) + struct.pack("<I", zlib.crc32(body)))
    body = bytearray(data[:-4])
    body = body[:-1]  # payload one byte short, CRC recomputed
    assert "payload" in _refuse(bytes(body) + struct.pack("<I", zlib.crc32(body)))


def test_codes_above_a_non_power_of_two_codebook_are_refused():
    codes = np.full((1, 4), 999)
    data, _ = _encode(codes, 4 * 512, codebook_size=1000)
    body = bytearray(data[:-4])
    body[HEADER_SIZE] = 0xFF  # first code becomes >= 1000 at 10 bits
    assert "exceeds" in _refuse(bytes(body) + struct.pack("<I", zlib.crc32(body)))


_VALID = _random_file(seed=11, n=8, frames=20)[2]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=len(_VALID) - 1))
def test_fuzz_every_truncation_is_refused(cut):
    _refuse(_VALID[:cut])


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0, max_value=len(_VALID) - 1), flip=st.integers(min_value=1, max_value=255))
def test_fuzz_every_corrupted_byte_is_refused(position, flip):
    corrupted = bytearray(_VALID)
    corrupted[position] ^= flip
    _refuse(bytes(corrupted))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes_never_crash(data):
    with contextlib.suppress(ApucodecError):
        parse_apc(data, "x.apc")


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=HEADER_SIZE - 4, max_size=300))
def test_fuzz_random_bodies_behind_a_valid_magic_and_crc(body):
    # The CRC is right, so every field check below it is what refuses (or accepts) the file — never a crash.
    data = MAGIC + body
    data += struct.pack("<I", zlib.crc32(data))
    try:
        header, codes = parse_apc(data, "x.apc")
    except ApucodecError:
        return
    assert codes.shape == (header.n_codebooks, header.frames)


def test_read_apc_file_errors(tmp_path):
    with pytest.raises(ApucodecError, match="no such file"):
        read_apc(tmp_path / "missing.apc")
    with pytest.raises(ApucodecError, match="directory"):
        read_apc(tmp_path)
    empty = tmp_path / "empty.apc"
    empty.write_bytes(b"")
    with pytest.raises(ApucodecError, match="empty"):
        read_apc(empty)
    wav = tmp_path / "a.apc"
    wav.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(ApucodecError, match="magic"):
        read_apc(wav)
    good = tmp_path / "good.apc"
    codes, _, data, _ = _random_file()
    good.write_bytes(data)
    np.testing.assert_array_equal(read_apc(good)[1], codes)
