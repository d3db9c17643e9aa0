"""The .apc header, versions 1 and 2: packing, and every field checked against the others before anything is read.

Version 1 (72 bytes) carried the rates, codebooks, lengths and model id. Version 2 (120 bytes) keeps that layout and
appends what makes codes say where they came from and how many signals they hold:

    offset size  field (version 2 only)
    72     2     channels (each coded on its own; the payload holds channel 0's frames, then channel 1's, ...)
    74     2     reserved (0)
    76     8     encoder graph precision, ASCII ("fp32", "cpu-int8", "npu-int8", "bf16"), zero-padded
    84     32    sha256 of the encoder graph that made the codes (raw bytes; zero when unknown)
    116    4     reserved (0)

Version 1 files still read (one channel, precision and graph unknown). Writers write version 2.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from apucodec.contract.config import MAX_CODEBOOKS
from apucodec.contract.config import bits_per_code as bits_for
from apucodec.contract.steps import frames_for_length
from apucodec.errors import InputError
from apucodec.io.resample import MAX_RATE, MIN_RATE

MAGIC = b"APC\x1a"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
HEADER_V1 = struct.Struct("<4sHHIIBBHIIQQ16sQI")
EXTENSION_V2 = struct.Struct("<HH8s32sI")
V1_HEADER_SIZE = HEADER_V1.size
HEADER_SIZE = V1_HEADER_SIZE + EXTENSION_V2.size  # what this apucodec writes
CRC_SIZE = 4
MAX_CHANNELS = 64
MAX_HOP = 1 << 20
MAX_CODEBOOK_SIZE = 1 << 24
# input_length must agree with original_length converted between the rates, give or take what a streaming
# resampler's rounding can move (a few samples, or 0.1% for very unusual ratios).
LENGTH_SLACK_SAMPLES = 4
LENGTH_SLACK_RATIO = 1e-3
assert V1_HEADER_SIZE == 72 and HEADER_SIZE == 120


@dataclass(frozen=True)
class ApcHeader:
    sample_rate: int
    input_rate: int
    n_codebooks: int
    codebook_size: int
    hop: int
    frames: int            # per channel
    original_length: int   # samples per channel at the codec rate
    model_id: str
    input_length: int
    channels: int = 1
    precision: str = ""    # the encoder graph's precision; "" in a version 1 file
    graph_sha256: str = ""  # hex; "" in a version 1 file
    version: int = FORMAT_VERSION

    @property
    def bits_per_code(self) -> int:
        return bits_for(self.codebook_size)

    @property
    def header_size(self) -> int:
        return V1_HEADER_SIZE if self.version == 1 else HEADER_SIZE

    @property
    def payload_bytes(self) -> int:
        return math.ceil(self.frames * self.n_codebooks * self.channels * self.bits_per_code / 8)

    @property
    def seconds(self) -> float:
        return self.original_length / self.sample_rate

    def pack(self) -> bytes:
        model_id = self.model_id.encode("ascii")
        if len(model_id) > 16:
            raise ValueError(f"model id {self.model_id!r} is longer than 16 characters")
        precision = self.precision.encode("ascii")
        if len(precision) > 8:
            raise ValueError(f"precision {self.precision!r} is longer than 8 characters")
        sha = bytes.fromhex(self.graph_sha256) if self.graph_sha256 else b"\0" * 32
        if len(sha) != 32:
            raise ValueError("graph sha256 must be 64 hex digits")
        head = HEADER_V1.pack(MAGIC, self.version, self.header_size, self.sample_rate, self.input_rate,
                              self.n_codebooks, self.bits_per_code, 0, self.codebook_size, self.hop, self.frames,
                              self.original_length, model_id.ljust(16, b"\0"), self.input_length, 0)
        if self.version == 1:
            if self.channels != 1:
                raise ValueError("a version 1 .apc holds one channel")
            return head
        return head + EXTENSION_V2.pack(self.channels, 0, precision.ljust(8, b"\0"), sha, 0)


def header_length(raw: bytes, source: str) -> int:
    """From the first 8 bytes: how long this file's header is (refusing versions this apucodec cannot read)."""
    if raw[:4] != MAGIC:
        raise InputError(f"{source}: not a valid .apc file (wrong magic bytes)")
    version, size = struct.unpack_from("<HH", raw, 4)
    if version not in READABLE_VERSIONS:
        raise InputError(f"{source}: .apc format version {version} is not supported (this apucodec reads "
                         f"versions {', '.join(map(str, READABLE_VERSIONS))})")
    expected = V1_HEADER_SIZE if version == 1 else HEADER_SIZE
    if size != expected:
        raise InputError(f"{source}: not a valid .apc file (unexpected header layout)")
    return size


def check_header(raw: bytes, source: str, file_size: int | None = None) -> ApcHeader:
    """Every field of a header (72 bytes for version 1, 120 for version 2) checked against the others and the
    file size, when known. Nothing is allocated from a field before this passes."""
    def bad(reason: str) -> InputError:
        return InputError(f"{source}: not a valid .apc file ({reason})")

    size = header_length(raw, source)
    if len(raw) < size:
        raise bad(f"truncated: {len(raw)} bytes is shorter than the header")
    (_, version, _, sample_rate, input_rate, n_codebooks, bits, reserved16, codebook_size, hop,
     frames, original_length, raw_id, input_length, reserved32) = HEADER_V1.unpack_from(raw)
    channels, precision, sha = 1, "", ""
    if version >= 2:
        channels, reserved_a, raw_precision, raw_sha, reserved_b = EXTENSION_V2.unpack_from(raw, V1_HEADER_SIZE)
        if reserved_a or reserved_b:
            raise bad("unexpected header layout")
        if not 1 <= channels <= MAX_CHANNELS:
            raise bad(f"{channels} channels")
        try:
            precision = raw_precision.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise bad("precision is not ASCII") from None
        sha = raw_sha.hex() if any(raw_sha) else ""
    if reserved16 or reserved32:
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
                       input_length, channels, precision, sha, version)
    if file_size is not None and file_size != size + header.payload_bytes + CRC_SIZE:
        raise bad(f"payload is {file_size - size - CRC_SIZE} bytes, the header implies {header.payload_bytes}")
    return header
