"""The .apc file: a header, the codes bit-packed at ceil(log2(codebook_size)) bits, and a CRC32.

    offset size  field
    0      4     magic b"APC\\x1a"
    4      2     format version (1)
    6      2     header size in bytes (72), so a later version can grow the header and stay readable
    8      4     sample rate of the codec (Hz)
    12     4     sample rate of the original input (Hz), for `decode --match-input`
    16     1     codebooks used (1..codebook count of the model)
    17     1     bits per code
    18     2     reserved (0)
    20     4     codebook size
    24     4     hop (samples per frame)
    28     8     frames
    36     8     original length (samples at the codec rate; the decoded output has exactly this length)
    44     16    model id (ASCII hex, from the manifest)
    60     8     original length in samples at the original input rate (exact `--match-input` length)
    68     4     reserved (0)
    72     ...   codes, frame-major (frame 0: codebook 0..n-1, frame 1: ...), each code MSB first, zero-padded to a byte
    end-4  4     CRC32 of everything before it

All integers are little-endian. Every field is checked on read, and the payload length must equal exactly what the
header implies, so a truncated or corrupted file is refused with a one-line reason instead of decoding garbage.
Codes are written as they are produced (streaming): the header is rewritten with the final frame count on close.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from apucodec.contract.config import MAX_CODEBOOKS
from apucodec.contract.config import bits_per_code as bits_for
from apucodec.errors import ApucodecError
from apucodec.runtime.steps import frames_for_length

MAGIC = b"APC\x1a"
FORMAT_VERSION = 1
HEADER = struct.Struct("<4sHHIIBBHIIQQ16sQI")
HEADER_SIZE = HEADER.size
CRC_SIZE = 4
assert HEADER_SIZE == 72


@dataclass(frozen=True)
class ApcHeader:
    sample_rate: int
    input_rate: int
    n_codebooks: int
    codebook_size: int
    hop: int
    frames: int
    original_length: int
    model_id: str
    input_length: int

    @property
    def bits_per_code(self) -> int:
        return bits_for(self.codebook_size)

    @property
    def payload_bytes(self) -> int:
        return math.ceil(self.frames * self.n_codebooks * self.bits_per_code / 8)

    @property
    def seconds(self) -> float:
        return self.original_length / self.sample_rate

    def pack(self) -> bytes:
        model_id = self.model_id.encode("ascii")
        if len(model_id) > 16:
            raise ValueError(f"model id {self.model_id!r} is longer than 16 characters")
        return HEADER.pack(MAGIC, FORMAT_VERSION, HEADER_SIZE, self.sample_rate, self.input_rate, self.n_codebooks,
                           self.bits_per_code, 0, self.codebook_size, self.hop, self.frames, self.original_length,
                           model_id.ljust(16, b"\0"), self.input_length, 0)


class BitPacker:
    """Packs codes MSB-first at a fixed width, carrying the bits that do not fill a byte to the next call."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
        self._carry = np.zeros(0, dtype=np.uint8)

    def pack(self, values: np.ndarray) -> bytes:
        values = np.asarray(values, dtype=np.uint32).ravel()
        bits = ((values[:, None] >> self._shifts) & 1).astype(np.uint8).ravel()
        bits = np.concatenate([self._carry, bits])
        whole = len(bits) - len(bits) % 8
        self._carry = bits[whole:]
        return np.packbits(bits[:whole]).tobytes()

    def flush(self) -> bytes:
        tail, self._carry = self._carry, np.zeros(0, dtype=np.uint8)
        return np.packbits(tail).tobytes() if len(tail) else b""


def unpack_codes(payload: bytes, count: int, bits: int) -> np.ndarray:
    """The first `count` codes of a packed payload, as int32."""
    bit_array = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), count=count * bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
    return (bit_array.reshape(count, bits).astype(np.int64) @ weights).astype(np.int32)


class ApcWriter:
    """Streams code frames into an open binary file; `close` writes the final header and the CRC32.

    The file must be seekable and readable ("w+b"): the header is rewritten at the end and the CRC is computed by
    reading the finished bytes back, which keeps the writer's memory constant.
    """

    def __init__(self, fh: BinaryIO, *, sample_rate: int, input_rate: int, n_codebooks: int, codebook_size: int,
                 hop: int, model_id: str) -> None:
        if not 1 <= n_codebooks <= MAX_CODEBOOKS:
            raise ValueError(f"codebooks used must be in 1..{MAX_CODEBOOKS}")
        self._fh = fh
        self._fields = dict(sample_rate=sample_rate, input_rate=input_rate, n_codebooks=n_codebooks,
                            codebook_size=codebook_size, hop=hop, model_id=model_id)
        self._packer = BitPacker(bits_for(codebook_size))
        self.frames = 0
        self._start = fh.tell()
        fh.write(self._header(0, 0, 0).pack())  # placeholder, rewritten on close

    def _header(self, frames: int, original_length: int, input_length: int) -> ApcHeader:
        return ApcHeader(frames=frames, original_length=original_length, input_length=input_length, **self._fields)

    def write(self, codes: np.ndarray) -> None:
        """Append codes [n_codebooks, frames]."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] != self._fields["n_codebooks"]:
            raise ValueError(f"expected [{self._fields['n_codebooks']}, frames] codes, got {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self._fields["codebook_size"]):
            raise ValueError("code out of the codebook's range")
        self._fh.write(self._packer.pack(codes.T))
        self.frames += codes.shape[1]

    def close(self, original_length: int, input_length: int) -> ApcHeader:
        """Finish the file: `original_length` samples at the codec rate, `input_length` at the input's rate."""
        header = self._header(self.frames, original_length, input_length)
        if frames_for_length(original_length, header.hop) != self.frames:
            raise ValueError(f"{self.frames} frames do not cover exactly {original_length} samples")
        self._fh.write(self._packer.flush())
        end = self._fh.tell()
        self._fh.seek(self._start)
        self._fh.write(header.pack())
        self._fh.seek(self._start)
        crc = 0
        remaining = end - self._start
        while remaining:
            block = self._fh.read(min(remaining, 1 << 20))
            if not block:
                raise OSError("file shrank while it was being written")
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
        self._fh.seek(end)
        self._fh.write(struct.pack("<I", crc))
        return header


def write_apc(fh: BinaryIO, codes: np.ndarray, *, original_length: int, sample_rate: int, input_rate: int,
              codebook_size: int, hop: int, model_id: str, input_length: int | None = None) -> ApcHeader:
    """Whole-array convenience around ApcWriter: codes [n, frames]."""
    writer = ApcWriter(fh, sample_rate=sample_rate, input_rate=input_rate, n_codebooks=codes.shape[0],
                       codebook_size=codebook_size, hop=hop, model_id=model_id)
    writer.write(codes)
    if input_length is None:
        input_length = original_length if input_rate == sample_rate else round(original_length * input_rate
                                                                                / sample_rate)
    return writer.close(original_length, input_length)


MIN_RATE, MAX_RATE = 1000, 1_000_000  # the rates apucodec reads (apucodec.audio.check_rate)
MAX_HOP = 1 << 20
MAX_CODEBOOK_SIZE = 1 << 24
# input_length must agree with original_length converted between the rates, give or take what a streaming
# resampler's rounding can move (a few samples, or 0.1% for very unusual ratios).
LENGTH_SLACK_SAMPLES = 4
LENGTH_SLACK_RATIO = 1e-3


def check_header(raw: bytes, source: str, file_size: int | None = None) -> ApcHeader:
    """Every field of a 72-byte header checked against the others (and the file size, when known).

    Nothing is allocated from a field before this passes: a header that claims a huge length, a payload bigger than
    the file, or an input length unrelated to the recorded one is refused here, with one line.
    """
    def bad(reason: str) -> ApucodecError:
        return ApucodecError(f"{source}: not a valid .apc file ({reason})")

    (magic, version, header_size, sample_rate, input_rate, n_codebooks, bits, reserved16, codebook_size, hop,
     frames, original_length, raw_id, input_length, reserved32) = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise bad("wrong magic bytes")
    if version != FORMAT_VERSION:
        raise ApucodecError(f"{source}: .apc format version {version} is not supported (this apucodec reads "
                            f"version {FORMAT_VERSION})")
    if header_size != HEADER_SIZE or reserved16 or reserved32:
        raise bad("unexpected header layout")
    if not MIN_RATE <= sample_rate <= MAX_RATE or not MIN_RATE <= input_rate <= MAX_RATE:
        raise bad("impossible sample rate")
    if not 1 <= n_codebooks <= MAX_CODEBOOKS:
        raise bad(f"{n_codebooks} codebooks used")
    if not 2 <= codebook_size <= MAX_CODEBOOK_SIZE or bits != bits_for(codebook_size):
        raise bad(f"{bits} bits per code do not fit a codebook of {codebook_size}")
    if not 1 <= hop <= MAX_HOP or original_length < 1 or frames != frames_for_length(original_length, hop):
        raise bad(f"{frames} frames do not cover the recorded length of {original_length} samples")
    if input_length < 1:
        raise bad("recorded input length is zero")
    expected = original_length * input_rate / sample_rate
    if abs(input_length - expected) > LENGTH_SLACK_SAMPLES + LENGTH_SLACK_RATIO * expected:
        raise bad(f"recorded input length {input_length} at {input_rate} Hz does not match {original_length} "
                  f"samples at {sample_rate} Hz")
    try:
        model_id = raw_id.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise bad("model id is not ASCII") from None
    header = ApcHeader(sample_rate, input_rate, n_codebooks, codebook_size, hop, frames, original_length, model_id,
                       input_length)
    if file_size is not None and file_size != HEADER_SIZE + header.payload_bytes + CRC_SIZE:
        raise bad(f"payload is {file_size - HEADER_SIZE - CRC_SIZE} bytes, the header implies "
                  f"{header.payload_bytes}")
    return header


def parse_apc(data: bytes, source: str = "<bytes>") -> tuple[ApcHeader, np.ndarray]:
    """Validate every field of an in-memory .apc file and return its header and codes [n_codebooks, frames].

    For small files and tests; `ApcReader` is the streaming reader the decoder uses.
    """
    def bad(reason: str) -> ApucodecError:
        return ApucodecError(f"{source}: not a valid .apc file ({reason})")

    if len(data) < HEADER_SIZE + CRC_SIZE:
        if data[:4] != MAGIC[: len(data[:4])]:
            raise bad("wrong magic bytes")
        raise bad(f"truncated: {len(data)} bytes is shorter than the header")
    if data[:4] != MAGIC:
        raise bad("wrong magic bytes")
    (version,) = struct.unpack_from("<H", data, 4)
    if version != FORMAT_VERSION:
        raise ApucodecError(f"{source}: .apc format version {version} is not supported (this apucodec reads "
                            f"version {FORMAT_VERSION})")
    (stored_crc,) = struct.unpack_from("<I", data, len(data) - CRC_SIZE)
    if zlib.crc32(data[: len(data) - CRC_SIZE]) != stored_crc:
        raise bad("CRC32 mismatch: the file is truncated or corrupted")
    header = check_header(data[:HEADER_SIZE], source, len(data))
    codes = unpack_codes(data[HEADER_SIZE: len(data) - CRC_SIZE], header.frames * header.n_codebooks,
                         header.bits_per_code)
    if codes.size and codes.max() >= header.codebook_size:
        raise bad(f"a code exceeds the codebook size {header.codebook_size}")
    return header, np.ascontiguousarray(codes.reshape(header.frames, header.n_codebooks).T)


def read_apc(path: str | Path) -> tuple[ApcHeader, np.ndarray]:
    """Read and validate a whole .apc file (one-line errors for missing, directory, truncated, corrupted)."""
    from apucodec.runtime.apc_reader import open_apc  # the streaming reader builds on this module

    with open_apc(path) as reader:
        chunks = list(reader.chunks(1 << 16))
    codes = np.concatenate(chunks, axis=1) if chunks else np.zeros((reader.header.n_codebooks, 0), dtype=np.int32)
    return reader.header, codes
