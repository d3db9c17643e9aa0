"""Arrays handed to the Python API, turned into what the codec hears: float32 mono at the codec rate.

File inputs are defined by apucodec.io.audio (libsndfile gives float frames x channels); arrays come from anywhere —
int16 from a WAV reader, float64 from librosa, [channels, samples] from torch — so each kind is interpreted on
purpose instead of being flattened or used unscaled:

* integers are PCM: int16 / 32768, int32 / 2**31, int8 / 128, uint8 as offset binary ((x - 128) / 128);
  other integer and non-numeric dtypes are refused (int64 and uint16 are not audio sample formats);
* floats (16/32/64 bit) are taken as they are (full scale is +-1), cast to float32;
* 1-D is mono; 2-D is channels-last [samples, channels] (soundfile's layout), or channels-first [channels, samples]
  when the first axis is the short one (at most 8 entries against a longer second axis, e.g. torch's [2, n]);
  a shape that fits neither (e.g. [4, 4]) is refused rather than guessed; channels are averaged like file inputs;
* 0-D, 3-D and larger, empty arrays, NaN/Inf samples and impossible sample rates are refused with one line;
* a rate other than the codec's is resampled with soxr's HQ resampler (the same as file inputs).

`as_mono_float32` returns the samples and notes saying what was done, for the caller to show like file notes.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from apucodec.errors import InputError
from apucodec.io.audio import CODEC_RATE, MAX_RATE, MIN_RATE, resample

log = logging.getLogger("apucodec")

MAX_CHANNELS = 8
_PCM_SCALE = {np.dtype("int16"): 32768.0, np.dtype("int32"): 2.0**31, np.dtype("int8"): 128.0}


def _as_float(array: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    dtype = array.dtype
    if dtype in _PCM_SCALE:
        notes.append(f"{name}: {dtype} PCM samples scaled to [-1, 1)")
        return (array.astype(np.float64) / _PCM_SCALE[dtype]).astype(np.float32)
    if dtype == np.dtype("uint8"):
        notes.append(f"{name}: uint8 (offset binary) PCM samples scaled to [-1, 1)")
        return ((array.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if dtype.kind == "f":
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused just below
            return array.astype(np.float32, copy=False)
    raise InputError(f"{name}: samples of dtype {dtype} are not audio (use float32/float64 in [-1, 1], or "
                        "int16/int32/int8/uint8 PCM)")


def frames_by_channels(array: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    """A 1-D or 2-D float array as [samples, channels] (see the module docstring for how the layout is told)."""
    if array.ndim == 1:
        return array[:, None]
    rows, cols = array.shape
    if cols <= MAX_CHANNELS and rows > cols:
        return array
    if rows <= MAX_CHANNELS and cols > rows:
        notes.append(f"{name}: shape {list(array.shape)} read as [channels, samples]")
        return array.T
    if rows == 1 or cols == 1:  # a single sample or a single channel, either way round
        return array.reshape(-1, 1)
    raise InputError(f"{name}: cannot tell channels from samples in shape {list(array.shape)}; pass "
                     f"[samples, channels] with at most {MAX_CHANNELS} channels, or a 1-D array")


def _to_mono(array: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    if array.ndim == 1:
        return array
    rows, cols = array.shape
    if cols <= MAX_CHANNELS and rows > cols:
        channels, frames_first = cols, True
    elif rows <= MAX_CHANNELS and cols > rows:
        channels, frames_first = rows, False
        notes.append(f"{name}: shape {list(array.shape)} read as [channels, samples]")
    else:
        raise InputError(f"{name}: cannot tell channels from samples in shape {list(array.shape)}; pass "
                            f"[samples, channels] with at most {MAX_CHANNELS} channels, or a 1-D array")
    if channels > 1:
        notes.append(f"{name}: {channels} channels downmixed to mono")
    return array.mean(axis=1 if frames_first else 0, dtype=np.float64).astype(np.float32)


def _samples_array(array: Any, name: str) -> np.ndarray:
    """A caller's object as a 1-D or 2-D, non-empty array, else one InputError line."""
    try:
        array = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: not an array of samples ({exc})") from None
    if array.ndim == 0 or array.ndim > 2:
        raise InputError(f"{name}: expected a 1-D (mono) or 2-D (multichannel) array, got {array.ndim}-D with "
                         f"shape {list(array.shape)}")
    if array.size == 0:
        raise InputError(f"{name}: contains no audio samples")
    return array


def checked_array(array: Any, name: str, notes: list[str]) -> np.ndarray:
    """An API caller's samples as float32 [samples, channels]: PCM integers scaled, NaN/Inf, empty and
    wrongly-shaped arrays refused with one line (InputError)."""
    frames = frames_by_channels(_as_float(_samples_array(array, name), name, notes), name, notes)
    if not np.all(np.isfinite(frames)):
        raise InputError(f"{name}: contains NaN or infinite samples")
    return frames


def check_rate(sample_rate: Any, name: str = "<array>") -> int:
    """A sample rate a caller passed: an integer in MIN_RATE..MAX_RATE (checked before a resampler allocates for
    it: a rate of 1 Hz would ask for gigabytes), else one InputError line."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not MIN_RATE <= int(sample_rate) <= MAX_RATE:
        raise InputError(f"{name}: sample rate must be an integer from {MIN_RATE} to {MAX_RATE} Hz, got "
                         f"{sample_rate!r}")
    return int(sample_rate)


def as_mono_float32(array: Any, sample_rate: int, target_rate: int = CODEC_RATE,
                    name: str = "<array>") -> tuple[np.ndarray, list[str]]:
    """(float32 mono samples at `target_rate`, notes) from an API caller's array; InputError if it is not audio."""
    notes: list[str] = []
    check_rate(sample_rate, name)
    samples = _to_mono(_as_float(_samples_array(array, name), name, notes), name, notes)
    if not np.all(np.isfinite(samples)):
        raise InputError(f"{name}: contains NaN or infinite samples")
    if int(sample_rate) != target_rate:
        notes.append(f"{name}: resampled from {int(sample_rate)} Hz to {target_rate} Hz")
        samples = resample(samples, int(sample_rate), target_rate)
    return np.ascontiguousarray(samples, dtype=np.float32), notes


def to_codec_input(array: Any, sample_rate: int, target_rate: int = CODEC_RATE,
                   name: str = "<array>") -> tuple[np.ndarray, int]:
    """For the Python API: (float32 mono at `target_rate`, the input's length in samples at its own rate); the
    notes go to the `apucodec` logger instead of the terminal."""
    mono, notes = as_mono_float32(array, sample_rate, int(sample_rate), name)
    length = mono.size
    if int(sample_rate) != target_rate:
        notes.append(f"{name}: resampled from {int(sample_rate)} Hz to {target_rate} Hz")
        mono = np.ascontiguousarray(resample(mono, int(sample_rate), target_rate), dtype=np.float32)
    for note in notes:
        log.info("%s", note)
    return mono, length
