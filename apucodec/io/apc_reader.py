"""Reading an .apc file (the layout: apucodec/io/apc_writer.py): the one reader, streaming or whole.

The header is checked against the file's size before anything is allocated, then codes come chunk by chunk with
the CRC32 accumulated and compared after the last one (decode's memory is one chunk, whatever the file's length).
`read_apc` (a whole file) and `parse_apc` (bytes in memory) are this reader run to the end, so every way in
applies the same checks.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from apucodec.errors import ApucodecError, InputError, require_file
from apucodec.io.apc_header import CRC_SIZE, MAGIC, V1_HEADER_SIZE, ApcHeader, check_header, header_length


class ApcReader:
    """Streams an .apc file: the header (validated against the file size first), then codes a chunk at a time.

    The CRC32 is accumulated while reading and compared after the last chunk, so a corrupted file raises its one
    line at the end of `chunks` — before a decoder's output is committed — and memory stays at one chunk.
    """

    def __init__(self, fh: BinaryIO, source: str, file_size: int | None) -> None:
        self._fh, self.source = fh, source
        def bad(reason: str) -> InputError:
            return InputError(f"{source}: not a valid .apc file ({reason})")
        self._bad = bad
        raw = self._read_exact(V1_HEADER_SIZE)
        if not raw:
            raise InputError(f"{source}: is empty, not an .apc file")
        if raw[:4] != MAGIC[: len(raw[:4])]:
            raise bad("wrong magic bytes")
        size = header_length(raw, source) if len(raw) >= 8 else V1_HEADER_SIZE
        raw += self._read_exact(size - len(raw)) if len(raw) == V1_HEADER_SIZE else b""
        if len(raw) < size or (file_size is not None and file_size < size + CRC_SIZE):
            raise bad(f"truncated: {file_size if file_size is not None else len(raw)} bytes is shorter than the "
                      "header")
        self.header = check_header(raw, source, file_size)
        self._crc = zlib.crc32(raw)

    def verify_crc(self) -> None:
        """Check the CRC32 over the whole file now, then rewind to the codes (a seekable file only).

        The streamed check in `chunks` comes after the last chunk: right for a file output, which is only linked
        into place afterwards, but a pipe (`decode bitflipped.apc -`) would already have received every decoded
        byte of a corrupt file. Reading a seekable file twice costs one pass over its codes (~21 MB for six hours).
        """
        start = self._fh.tell()
        crc = self._crc
        body = self.header.payload_bytes
        while body:
            block = self._fh.read(min(body, 1 << 20))
            if not block:
                raise self._bad("truncated: the payload ends early")
            crc = zlib.crc32(block, crc)
            body -= len(block)
        stored = self._read_exact(CRC_SIZE)
        if len(stored) != CRC_SIZE or struct.unpack("<I", stored)[0] != crc:
            raise self._bad("CRC32 mismatch: the file is truncated or corrupted")
        self._fh.seek(start)

    def _read_exact(self, size: int) -> bytes:
        parts, remaining = [], size
        while remaining:
            block = self._fh.read(remaining)
            if not block:
                break
            parts.append(block)
            remaining -= len(block)
        return b"".join(parts)

    def chunks(self, max_frames: int) -> Iterator[np.ndarray]:
        """Codes [n_codebooks, <= max_frames] int32, in order (all of channel 0's frames, then channel 1's...; no
        chunk spans two channels); the CRC and the file's end are checked last."""
        h = self.header
        bits, n = h.bits_per_code, h.n_codebooks
        carry = np.zeros(0, dtype=np.uint8)
        weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
        remaining_bytes = h.payload_bytes
        starts = [start for _ in range(h.channels) for start in range(0, h.frames, max_frames)]
        for start in starts:
            count = min(max_frames, h.frames - start) * n
            need = count * bits - carry.size
            take = min(remaining_bytes, -(-need // 8))
            data = self._read_exact(take)
            if len(data) != take:
                raise self._bad("truncated: the payload ends early")
            remaining_bytes -= take
            self._crc = zlib.crc32(data, self._crc)
            bit_array = np.concatenate([carry, np.unpackbits(np.frombuffer(data, dtype=np.uint8))])
            used = bit_array[: count * bits]
            carry = bit_array[count * bits:]
            codes = (used.reshape(count, bits).astype(np.int64) @ weights).astype(np.int32)
            if codes.size and codes.max() >= h.codebook_size:
                raise self._bad(f"a code exceeds the codebook size {h.codebook_size}")
            yield np.ascontiguousarray(codes.reshape(-1, n).T)
        tail = self._read_exact(remaining_bytes + CRC_SIZE + 1)
        if len(tail) != remaining_bytes + CRC_SIZE:
            raise self._bad("truncated or trailing bytes: the size does not match the header")
        self._crc = zlib.crc32(tail[:remaining_bytes], self._crc)
        (stored,) = struct.unpack_from("<I", tail, remaining_bytes)
        if stored != self._crc:
            raise self._bad("CRC32 mismatch: the file is truncated or corrupted")


@contextlib.contextmanager
def open_apc(path: str | Path, display: str | None = None) -> Iterator[ApcReader]:
    """An `ApcReader` over a file (header checked against the file's size before anything else is read)."""
    path = require_file(Path(path), "an .apc file")
    source = display or str(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after the reader is done
    except OSError as exc:
        raise ApucodecError(f"{source}: cannot read ({exc.strerror})") from None
    try:
        st = os.fstat(fh.fileno())
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        try:
            reader = ApcReader(fh, source, size)
            if size is not None:
                reader.verify_crc()  # before the first decoded byte can reach a pipe
            yield reader
        except OSError as exc:
            raise ApucodecError(f"{source}: cannot read ({exc.strerror})") from None
    finally:
        fh.close()


def _whole(reader: ApcReader) -> tuple[ApcHeader, np.ndarray]:
    """Every code of an opened reader: [n_codebooks, frames], or [channels, n_codebooks, frames]."""
    header = reader.header
    chunks = list(reader.chunks(1 << 16))
    if not chunks:
        return header, np.zeros((header.n_codebooks, 0), dtype=np.int32)
    codes = np.concatenate(chunks, axis=1).reshape(header.n_codebooks, header.channels, header.frames)
    codes = np.ascontiguousarray(codes.transpose(1, 0, 2))
    return header, codes[0] if header.channels == 1 else codes


def read_apc(path: str | Path) -> tuple[ApcHeader, np.ndarray]:
    """Read and validate a whole .apc file (one-line errors for missing, directory, truncated, corrupted): codes
    [n_codebooks, frames], or [channels, n_codebooks, frames] when the file holds several channels."""
    with open_apc(path) as reader:
        return _whole(reader)


def parse_apc(data: bytes, source: str = "<bytes>") -> tuple[ApcHeader, np.ndarray]:
    """An .apc file already in memory (a listening page's upload, a pipe's output), read like a file on disk."""
    reader = ApcReader(io.BytesIO(data), source, len(data))
    reader.verify_crc()
    return _whole(reader)
