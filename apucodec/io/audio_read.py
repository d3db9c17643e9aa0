"""Reading audio: anything libsndfile reads, downmixed to mono and resampled to the rate the caller's model runs at.

Every stage (training data, calibration clips, the runtime, tokenize) reads through here so that "what the codec
hears" is defined once: float32 mono, channels averaged, soxr's HQ resampler (apucodec.io.resample). Whole files
suit training and calibration; the runtime reads in blocks (`read_blocks`), so its memory stays at a few blocks
whatever the file's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.errors import ApucodecError, first_line, require_file
from apucodec.io.path_names import check_file_name, sf_name
from apucodec.io.resample import StreamResampler, check_rate, resample

BLOCK_FRAMES = 1 << 16


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


def check_finite(audio: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(audio)):
        raise ApucodecError(f"{path}: contains NaN or infinite samples")


def read_audio(path: str | Path, sample_rate: int | None) -> tuple[np.ndarray, AudioInfo]:
    """Whole file as float32 mono at `sample_rate` (the model's rate; None keeps the file's own), plus what the
    file originally was."""
    info = probe(path)
    try:
        data, _ = sf.read(sf_name(info.path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise ApucodecError(f"{info.path}: cannot decode audio ({first_line(exc)})") from None
    mono = to_mono(data)
    check_finite(mono, info.path)
    return resample(mono, info.sample_rate, info.sample_rate if sample_rate is None else sample_rate), info


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
