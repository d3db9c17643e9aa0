"""Audio I/O: read anything libsndfile reads, downmix to mono, resample to the codec rate, write atomically.

Every stage (training data, calibration windows, the runtime) goes through here so that "what the codec hears"
is defined once: float32 mono at 44.1 kHz, soxr's high-quality resampler, channels averaged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.errors import ApucodecError, first_line, require_file
from apucodec.io.path_names import check_file_name, sf_name

CODEC_RATE = 44100
# Sample rates apucodec reads. A header is a few bytes an attacker controls: a 400 KB WAV that says 1 Hz asks the
# resampler for 44100 output samples per input sample (16.5 GB). Real audio lives between telephone-band 8 kHz
# and 768 kHz studio converters; these bounds leave room on both sides and refuse the rest before resampling.
MIN_RATE = 1000
MAX_RATE = 1_000_000


def check_rate(rate: object, name: str) -> int:
    """`rate` as an int if it is a sample rate apucodec reads, else one line naming `name` and the bounds."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not MIN_RATE <= int(rate) <= MAX_RATE:
        raise ApucodecError(f"{name}: sample rate {rate!r} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    return int(rate)


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str | Path) -> AudioInfo:
    """Header information, with one-line errors for paths that are not readable audio (or at an absurd rate)."""
    check_file_name(path, "input")
    path = require_file(Path(path), "an audio file")
    try:
        info = sf.info(sf_name(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError with libsndfile's text
        raise ApucodecError(f"{path}: not readable audio ({first_line(exc)})") from None
    if info.frames <= 0:
        raise ApucodecError(f"{path}: contains no audio samples")
    check_rate(int(info.samplerate), str(path))
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), str(info.format))


def to_mono(audio: np.ndarray) -> np.ndarray:
    """[frames] or [frames, channels] -> [frames] float32 (channel average)."""
    if audio.ndim == 2:
        audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample(audio: np.ndarray, rate_in: int, rate_out: int = CODEC_RATE) -> np.ndarray:
    if rate_in == rate_out:
        return audio
    import soxr  # imported here: a 44.1 kHz-only workflow never needs it

    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def check_finite(audio: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(audio)):
        raise ApucodecError(f"{path}: contains NaN or infinite samples")


def read_audio(path: str | Path, sample_rate: int = CODEC_RATE) -> tuple[np.ndarray, AudioInfo]:
    """Whole file as float32 mono at `sample_rate`, plus what the file originally was."""
    info = probe(path)
    try:
        data, _ = sf.read(sf_name(info.path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise ApucodecError(f"{info.path}: cannot decode audio ({first_line(exc)})") from None
    mono = to_mono(data)
    check_finite(mono, info.path)
    return resample(mono, info.sample_rate, sample_rate), info


def list_audio_files(folder: str | Path) -> list[Path]:
    """Every file under `folder` (recursively) that libsndfile can open, sorted for determinism."""
    folder = Path(folder)
    if not folder.exists():
        raise ApucodecError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ApucodecError(f"{folder}: is not a folder")
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            info = sf.info(sf_name(path))
        except Exception:
            continue
        if info.frames > 0:
            files.append(path)
    return files


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a path that a path-only writer (matplotlib) may write; what it writes reaches `path` through the one
    output path (apucodec.io.outputs: unnamed temp file, devices and FIFOs in place, `-`, the existing file's mode)
    only if the block finishes. `suffix` is kept for callers that passed one; the yielded name needs none.
    """
    from apucodec.io.outputs import open_binary_output

    with open_binary_output(path) as fh:
        fh.flush()
        yield Path(f"/proc/self/fd/{fh.fileno()}")
        fh.seek(0, os.SEEK_END)  # the writer wrote through its own descriptor; make ours agree before committing


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = CODEC_RATE, subtype: str | None = None) -> None:
    """Write mono audio atomically (apucodec.io.outputs); the container comes from the extension (WAV when none)."""
    from apucodec.io.audio_blocks import open_audio_output

    with open_audio_output(path, sample_rate, len(audio), subtype) as fh:
        fh.write(np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0))
