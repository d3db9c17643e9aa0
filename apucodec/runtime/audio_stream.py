"""Streaming audio in and out of the pipeline: soundfile blocks, downmix, NaN checks, soxr's streaming resampler.

apucodec.audio reads whole files, which is right for training and calibration but would make the runtime's memory
grow with the file; here the same definition of "what the codec hears" (float32 mono, channel average, soxr HQ at
44.1 kHz) is applied one block at a time, so memory stays at a few blocks whatever the length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.audio import AudioInfo, check_finite, probe, to_mono
from apucodec.errors import ApucodecError

BLOCK_FRAMES = 1 << 16


class StreamResampler:
    """soxr's ResampleStream at HQ quality, or a pass-through when the rates agree."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = None
        if rate_in != rate_out:
            import soxr

            self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return block
        return self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, dtype=np.float32), last=True)


def read_blocks(info: AudioInfo, rate_out: int, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """The file as float32 mono blocks at `rate_out`; NaN/Inf samples end it with a one-line error."""
    resampler = StreamResampler(info.sample_rate, rate_out)
    try:
        with sf.SoundFile(str(info.path)) as fh:
            for block in fh.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                mono = to_mono(block)
                check_finite(mono, info.path)
                out = resampler.process(mono)
                if out.size:
                    yield out
    except ApucodecError:
        raise
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ApucodecError(f"{info.path}: cannot decode audio ({str(exc).strip().splitlines()[0]})") from None
    tail = resampler.flush()
    if tail.size:
        yield tail


def open_input(path: str | Path) -> AudioInfo:
    """Probe an input (missing, directory, unreadable and empty files end here with one line)."""
    return probe(path)


def output_format(path: Path) -> tuple[str, str]:
    """(container, subtype) from the output's extension: WAV unless it names another libsndfile format."""
    ext = path.suffix.lstrip(".").upper()
    fmt = ext if ext in sf.available_formats() else "WAV"
    subtype = "PCM_16" if fmt in ("WAV", "FLAC", "AIFF") else sf.default_subtype(fmt)
    return fmt, subtype


class AudioWriter:
    """Writes blocks at the codec rate into an open SoundFile, resampled to its rate, with an exact final length."""

    def __init__(self, fh: sf.SoundFile, rate_in: int, target_length: int | None = None) -> None:
        self._fh = fh
        self._resampler = StreamResampler(rate_in, fh.samplerate)
        self._target = target_length
        self.written = 0

    def _emit(self, block: np.ndarray) -> None:
        if self._target is not None:
            block = block[: max(self._target - self.written, 0)]
        if block.size:
            self._fh.write(np.clip(block, -1.0, 1.0))
            self.written += block.size

    def write(self, block: np.ndarray) -> None:
        self._emit(self._resampler.process(block))

    def finish(self) -> None:
        self._emit(self._resampler.flush())
        if self._target is not None and self.written < self._target:
            self._emit(np.zeros(self._target - self.written, dtype=np.float32))
