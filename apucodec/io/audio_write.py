"""Writing audio and other finished outputs: every one goes through the one output path (apucodec.io.outputs).

One writer, `open_audio_output`: regular files through libsndfile in the container the extension names, written to
an unnamed temp file linked into place only when the block finishes; `-`, devices and FIFOs written in place (a
streamed WAV where libsndfile cannot stream the container). `AudioWriter` (blocks, resampled, cut to an exact
length) and `atomic_output` (for path-only writers such as matplotlib) go through the same path, so no caller can
bypass the hardening.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf

from apucodec.errors import ApucodecError
from apucodec.io.outputs import describe, extension, open_binary_output, open_output
from apucodec.io.resample import StreamResampler

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


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a path that a path-only writer (matplotlib) may write; what it writes reaches `path` through the one
    output path (apucodec.io.outputs: unnamed temp file, devices and FIFOs in place, `-`, the existing file's mode)
    only if the block finishes. `suffix` is kept for callers that passed one; the yielded name needs none.
    """

    with open_binary_output(path) as fh:
        fh.flush()
        yield Path(f"/proc/self/fd/{fh.fileno()}")
        fh.seek(0, os.SEEK_END)  # the writer wrote through its own descriptor; make ours agree before committing
