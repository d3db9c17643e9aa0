"""Arrays handed to the Python API, turned into what the codec hears: float32 [samples, channels].

File inputs are defined by apucodec.io.audio_read (libsndfile gives float frames x channels); arrays come from
anywhere — int16 from a WAV reader, float64 from librosa, [channels, samples] from torch — so each kind is
interpreted on purpose instead of being flattened or used unscaled:

* integers are PCM: int16 / 32768, int32 / 2**31, int8 / 128, uint8 as offset binary ((x - 128) / 128);
  other integer and non-numeric dtypes are refused (int64 and uint16 are not audio sample formats);
* floats (16/32/64 bit) are taken as they are (full scale is +-1), cast to float32;
* 1-D is mono; 2-D is channels-last [samples, channels] (soundfile's layout), or channels-first [channels, samples]
  when the first axis is the short one (at most 8 entries against a longer second axis, e.g. torch's [2, n]);
  a shape that fits neither (e.g. [4, 4]) is refused rather than guessed; each channel is coded on its own;
* 0-D, 3-D and larger, empty arrays, NaN/Inf samples and impossible sample rates are refused with one line;
* a rate other than the codec's is resampled by the caller with apucodec.io.resample (the same as file inputs).

`checked_array` appends notes saying what was done, for the caller to show like file notes.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from apucodec.errors import InputError

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
