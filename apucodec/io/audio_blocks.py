"""Streaming audio in and out of the pipeline: soundfile blocks, downmix, NaN checks, soxr's streaming resampler.

apucodec.io.audio reads whole files, which is right for training and calibration but would make the runtime's memory
grow with the file; here the same definition of "what the codec hears" (float32 mono, channel average, soxr HQ at
44.1 kHz) is applied one block at a time, so memory stays at a few blocks whatever the length.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf

from apucodec.errors import ApucodecError, first_line
from apucodec.io.audio import AudioInfo, check_finite, probe, to_mono
from apucodec.io.path_names import sf_name

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


def read_blocks(info: AudioInfo, rate_out: int, block_frames: int = BLOCK_FRAMES,
                channel: int | None = None) -> Iterator[np.ndarray]:
    """The file as float32 mono blocks at `rate_out` (the channel average, or one `channel`); NaN/Inf samples end
    it with a one-line error."""
    resampler = StreamResampler(info.sample_rate, rate_out)
    try:
        with sf.SoundFile(sf_name(info.path)) as fh:
            for block in fh.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                mono = to_mono(block) if channel is None else np.ascontiguousarray(block[:, channel])
                check_finite(mono, info.path)
                out = resampler.process(mono)
                if out.size:
                    yield out
    except ApucodecError:
        raise
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ApucodecError(f"{info.path}: cannot decode audio ({first_line(exc)})") from None
    tail = resampler.flush()
    if tail.size:
        yield tail


def open_input(path: str | Path) -> AudioInfo:
    """Probe an input (missing, directory, unreadable and empty files end here with one line)."""
    return probe(path)


# Output containers by extension (libsndfile's names). No extension, `-` and device/FIFO names mean WAV.
OUTPUT_EXTENSIONS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".aiff": "AIFF", ".aif": "AIFF",
                     ".au": "AU", ".snd": "AU", ".caf": "CAF", ".w64": "W64", ".rf64": "RF64", ".mp3": "MP3",
                     ".raw": "RAW", ".pcm": "RAW"}
PCM16_FORMATS = ("WAV", "FLAC", "AIFF", "AU", "CAF", "W64", "RF64", "RAW")


def supported_extensions() -> list[str]:
    available = sf.available_formats()
    return [ext for ext, fmt in OUTPUT_EXTENSIONS.items() if fmt in available]


def output_format(path: Path) -> tuple[str, str]:
    """(container, subtype) from the output's extension; an extension that names no audio format is refused.

    A silent fallback to WAV used to turn `out.mp4` into a WAV file named .mp4; now the user hears about it.
    """
    from apucodec.io.outputs import describe, extension

    ext = extension(path)
    if ext == ".apc":
        raise ApucodecError(f"{path}: .apc is the code format; use 'apucodec encode' to write one")
    fmt = OUTPUT_EXTENSIONS.get(ext) if ext else "WAV"  # no extension: `-`, /dev/null, a FIFO, or a plain name
    if fmt is None or fmt not in sf.available_formats():
        raise ApucodecError(f"{describe(path)}: unknown output extension {ext!r} (supported: "
                            f"{', '.join(supported_extensions())}, or no extension for WAV)")
    subtype = "PCM_16" if fmt in PCM16_FORMATS else sf.default_subtype(fmt)
    return fmt, subtype


class StreamingWav:
    """WAV PCM_16 written strictly forward, for pipes and devices (libsndfile refuses WAV to a pipe).

    The header carries the exact length when it is known in advance, else 0xFFFFFFFF sizes: the convention ffmpeg
    and sox use for streamed WAV, which they and libsndfile read to the end of the data.
    """

    def __init__(self, raw: BinaryIO, samplerate: int, frames: int | None) -> None:
        self.samplerate = samplerate
        self._raw = raw
        data = 0xFFFFFFFF if frames is None or frames * 2 > 0xFFFFFFFF - 36 else frames * 2
        riff = 0xFFFFFFFF if data == 0xFFFFFFFF else data + 36
        raw.write(b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, samplerate,
                  samplerate * 2, 2, 16) + b"data" + struct.pack("<I", data))

    def write(self, block: np.ndarray) -> None:
        # libsndfile 1.2's float -> PCM_16 result (scale by 32768, floor, clip; measured), so a streamed WAV holds
        # exactly the samples a file written through libsndfile would
        pcm = np.clip(np.floor(np.asarray(block, dtype=np.float32) * np.float32(32768.0)), -32768, 32767).astype("<i2")
        self._raw.write(pcm.tobytes())


@contextlib.contextmanager
def open_audio_output(path: str | Path, samplerate: int, frames: int | None = None,
                      subtype: str | None = None, channels: int = 1) -> Iterator[Any]:
    """A mono audio sink (`.samplerate`, `.write(block)`) committed only if the block finishes (apucodec.io.outputs).

    Regular files go through libsndfile in any container; `-`, devices and FIFOs get the container from the
    extension if libsndfile can stream it (FLAC, AU, RAW, OGG), and a streamed WAV otherwise. `frames`, when the
    caller knows the final length, lets a streamed WAV header carry it.
    """
    from apucodec.io.outputs import open_output

    path = Path(path)
    fmt, default_subtype = output_format(path)
    subtype = subtype or default_subtype
    with open_output(path) as out:
        if out.streaming and fmt == "WAV" and subtype == "PCM_16" and channels == 1:
            out.raw.swallow = False  # no C caller in between: a failed write (EPIPE) stops the run at once
            yield StreamingWav(out.raw, samplerate, frames)
            return
        try:
            fh = sf.SoundFile(out.fd if out.streaming else out.raw, "w", samplerate, channels, subtype, format=fmt,
                              closefd=False)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise ApucodecError(f"{out.name}: cannot write {fmt} here ({str(exc).strip().splitlines()[-1]})") from None
        try:
            with fh:
                yield fh
        except (sf.LibsndfileError, RuntimeError) as exc:
            out.raw.check()
            raise ApucodecError(f"{out.name}: cannot write ({str(exc).strip().splitlines()[-1]})") from None


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
