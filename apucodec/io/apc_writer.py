"""The .apc file: a header, the codes bit-packed at ceil(log2(codebook_size)) bits, and a CRC32.

    offset size  field
    0      4     magic b"APC\\x1a"
    4      2     format version (2; version 1 files still read, apucodec/io/apc_header.py)
    6      2     header size in bytes (120; 72 in version 1), so a later version can grow the header and stay readable
    8      4     sample rate of the codec (Hz)
    12     4     sample rate of the original input (Hz), for `decode --match-input`
    16     1     codebooks used (1..codebook count of the model)
    17     1     bits per code
    18     2     reserved (0)
    20     4     codebook size
    24     4     hop (samples per frame)
    28     8     frames (per channel)
    36     8     original length (samples at the codec rate; the decoded output has exactly this length)
    44     16    model id (ASCII hex, from the manifest)
    60     8     original length in samples at the original input rate (exact `--match-input` length)
    68     4     reserved (0)
    72     48    version 2: channels, the encoder graph's precision and sha256 (apc_header.py)
    120    ...   codes: channel 0's frames, then channel 1's...; frame-major within a channel (frame 0: codebook
                 0..n-1, frame 1: ...), each code MSB first, the whole payload zero-padded to a byte
    end-4  4     CRC32 of everything before it

All integers are little-endian. Codes are written as they are produced (streaming): the header is rewritten with the
final frame count on close. Reading is apucodec/io/apc_reader.py's: every field is checked, and the payload length
must equal exactly what the header implies, so a truncated or corrupted file is refused with a one-line reason.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

from apucodec.contract.config import MAX_CODEBOOKS
from apucodec.contract.config import bits_per_code as bits_for
from apucodec.contract.steps import frames_for_length
from apucodec.io.apc_header import FORMAT_VERSION, MAX_CHANNELS, ApcHeader


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


class ApcWriter:
    """Streams code frames into an open binary file; `close` writes the final header and the CRC32.

    The file must be seekable and readable ("w+b"): the header is rewritten at the end and the CRC is computed by
    reading the finished bytes back, which keeps the writer's memory constant.
    """

    def __init__(self, fh: BinaryIO, *, sample_rate: int, input_rate: int, n_codebooks: int, codebook_size: int,
                 hop: int, model_id: str, channels: int = 1, precision: str = "", graph_sha256: str = "",
                 version: int = FORMAT_VERSION) -> None:
        if not 1 <= n_codebooks <= MAX_CODEBOOKS:
            raise ValueError(f"codebooks used must be in 1..{MAX_CODEBOOKS}")
        if not 1 <= channels <= MAX_CHANNELS:
            raise ValueError(f"channels must be in 1..{MAX_CHANNELS}")
        self._fh = fh
        self._fields = dict(sample_rate=sample_rate, input_rate=input_rate, n_codebooks=n_codebooks,
                            codebook_size=codebook_size, hop=hop, model_id=model_id, channels=channels,
                            precision=precision, graph_sha256=graph_sha256, version=version)
        self._packer = BitPacker(bits_for(codebook_size))
        self.frames = 0
        self._start = fh.tell()
        fh.write(self._header(0, 0, 0).pack())  # placeholder, rewritten on close

    def _header(self, frames: int, original_length: int, input_length: int) -> ApcHeader:
        return ApcHeader(frames=frames, original_length=original_length, input_length=input_length, **self._fields)

    def write(self, codes: np.ndarray) -> None:
        """Append codes [n_codebooks, frames] (with several channels: all of channel 0's, then channel 1's...)."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] != self._fields["n_codebooks"]:
            raise ValueError(f"expected [{self._fields['n_codebooks']}, frames] codes, got {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self._fields["codebook_size"]):
            raise ValueError("code out of the codebook's range")
        self._fh.write(self._packer.pack(codes.T))
        self.frames += codes.shape[1]

    def close(self, original_length: int, input_length: int) -> ApcHeader:
        """Finish the file: `original_length` samples at the codec rate, `input_length` at the input's rate."""
        channels = int(self._fields["channels"])
        if self.frames % channels:
            raise ValueError(f"{self.frames} frames do not split into {channels} channels")
        header = self._header(self.frames // channels, original_length, input_length)
        if frames_for_length(original_length, header.hop) != header.frames:
            raise ValueError(f"{header.frames} frames do not cover exactly {original_length} samples")
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
              codebook_size: int, hop: int, model_id: str, input_length: int | None = None, precision: str = "",
              graph_sha256: str = "", version: int = FORMAT_VERSION) -> ApcHeader:
    """Whole-array convenience around ApcWriter: codes [n, frames], or [channels, n, frames]."""
    codes = np.asarray(codes)
    per_channel = codes[None] if codes.ndim == 2 else codes
    writer = ApcWriter(fh, sample_rate=sample_rate, input_rate=input_rate, n_codebooks=per_channel.shape[1],
                       codebook_size=codebook_size, hop=hop, model_id=model_id, channels=per_channel.shape[0],
                       precision=precision, graph_sha256=graph_sha256, version=version)
    for channel in per_channel:
        writer.write(channel)
    if input_length is None:
        input_length = original_length if input_rate == sample_rate else round(original_length * input_rate
                                                                                / sample_rate)
    return writer.close(original_length, input_length)
