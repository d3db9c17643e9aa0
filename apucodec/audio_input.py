"""Arrays from users' programs -> what the codec hears: float32 mono at the codec's rate.

Users hand the API whatever their audio library returned: soundfile's float64 [n, channels], a WAV's int16, a
torchaudio-style [channels, n], 48 kHz from a microphone. Each is converted the way a listener would expect
(integers scaled to [-1, 1), channels averaged, soxr HQ resampling) and anything that cannot be audio is refused
with one line, never silently flattened.
"""

from __future__ import annotations

import logging

import numpy as np

from apucodec.errors import ApucodecError

log = logging.getLogger("apucodec")

MAX_CHANNELS = 64  # more "channels" than this is not a channel axis, it is a mistake


def _scaled(audio: np.ndarray) -> np.ndarray:
    kind = audio.dtype.kind
    if kind == "f":
        return audio.astype(np.float32, copy=False)
    if kind == "i":
        return (audio.astype(np.float64) / float(2 ** (8 * audio.dtype.itemsize - 1))).astype(np.float32)
    if kind == "u":
        half = float(2 ** (8 * audio.dtype.itemsize - 1))
        return ((audio.astype(np.float64) - half) / half).astype(np.float32)
    if kind == "b":
        raise ApucodecError("audio is a boolean array, not samples")
    raise ApucodecError(f"audio of dtype {audio.dtype} is not samples (use float or integer PCM)")


def _channels_last(audio: np.ndarray) -> np.ndarray:
    """[n] or [n, ch] as soundfile returns it; [ch, n] (torchaudio's layout) when the first axis is the short one."""
    if audio.ndim == 1:
        return audio[:, None]
    if audio.ndim != 2:
        raise ApucodecError(f"audio must be [samples] or [samples, channels], got shape {list(audio.shape)}")
    rows, cols = audio.shape
    if cols <= MAX_CHANNELS and (cols <= rows or rows > MAX_CHANNELS):
        return audio
    if rows <= MAX_CHANNELS:
        return audio.T
    raise ApucodecError(f"audio of shape {list(audio.shape)} has no channel axis of at most {MAX_CHANNELS}")


def to_codec_input(audio: np.ndarray, sample_rate: int, codec_rate: int,
                   name: str = "audio") -> tuple[np.ndarray, int]:
    """Any PCM array at `sample_rate` -> (float32 mono at `codec_rate`, the input's length in samples per channel);
    notes (downmix, resampling) go to logging."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ApucodecError(f"{name}: sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    audio = np.asarray(audio)
    frames = _channels_last(_scaled(audio))
    if frames.shape[0] == 0:
        raise ApucodecError(f"{name}: contains no audio samples")
    if not np.all(np.isfinite(frames)):
        raise ApucodecError(f"{name}: contains NaN or Inf samples")
    if frames.shape[1] > 1:
        log.info("%s: %d channels downmixed to mono", name, frames.shape[1])
    mono = frames.mean(axis=1, dtype=np.float64).astype(np.float32) if frames.shape[1] > 1 else frames[:, 0]
    if sample_rate != codec_rate:
        import soxr

        log.info("%s: resampled from %d Hz to %d Hz", name, sample_rate, codec_rate)
        mono = soxr.resample(mono, sample_rate, codec_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono), int(frames.shape[0])
