"""The listening page's pictures, computed in NumPy: waveform, spectrogram and the difference spectrogram.

The spectrogram uses a 2048-point STFT (21.5 Hz bins at 44.1 kHz) on a linear frequency axis, so the codec's
frame-rate comb (lines at multiples of 86 Hz, sample rate / hop) shows up as evenly spaced horizontal lines. Every
picture of one input shares the original's dB scale (its peak, 90 dB down), so decodes are compared by eye on the
same colours; the difference picture is decoded minus original in dB (red: energy the codec added, blue: lost).
"""

from __future__ import annotations

import numpy as np

from apucodec.tools.listen.png import colour_levels, colour_signed, encode_png

N_FFT = 2048
HOP = 512
WIDTH = 720          # pixels along time (columns are pooled, so a long file still fits)
SPEC_HEIGHT = 256    # pixels along frequency, 0 Hz at the bottom
WAVE_HEIGHT = 96
RANGE_DB = 90.0      # dynamic range shown below the original's peak
LOW_BINS = 128       # the low-frequency view: 0..2756 Hz at 44.1 kHz, 2 pixels per bin, 86 Hz lines 8 px apart
DIFF_DB = 20.0       # +-dB at full colour in the difference picture
FLOOR = 1e-10


def stft_db(audio: np.ndarray) -> np.ndarray:
    """Power spectrogram in dB, [N_FFT // 2 + 1 bins, frames] (Hann window, centred frames, reflect padding)."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    if x.size < 2:
        x = np.zeros(2)
    pad = N_FFT // 2
    x = np.pad(x, (pad, pad), mode="reflect" if x.size > pad else "constant")
    frames = 1 + max(0, x.size - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    spectrum = np.fft.rfft(x[index] * np.hanning(N_FFT), axis=1)
    return (10.0 * np.log10(np.abs(spectrum) ** 2 + FLOOR)).T


def _pool(values: np.ndarray, axis: int, size: int, reduce: str) -> np.ndarray:
    """Shrink `axis` to at most `size` by pooling whole groups (mean or max); a short axis is repeated instead."""
    n = values.shape[axis]
    edges = np.linspace(0, n, min(n, size) + 1).astype(np.int64)
    op = np.maximum if reduce == "max" else np.add
    pooled = op.reduceat(values, edges[:-1], axis=axis)
    if reduce == "mean":
        counts = np.diff(edges).reshape([-1 if a == axis else 1 for a in range(values.ndim)])
        pooled = pooled / counts
    if pooled.shape[axis] < size:
        pooled = np.take(pooled, (np.arange(size) * pooled.shape[axis]) // size, axis=axis)
    return pooled


def _picture(db: np.ndarray, low: bool) -> np.ndarray:
    """[bins, frames] -> [SPEC_HEIGHT, WIDTH], low frequencies at the bottom (`low`: only the lowest LOW_BINS)."""
    if low:
        db = db[:LOW_BINS]
    return _pool(_pool(db, 0, SPEC_HEIGHT, "mean"), 1, WIDTH, "max")[::-1]


def spectrogram_png(audio: np.ndarray, top_db: float, low: bool = False) -> bytes:
    """The spectrogram of `audio` on the scale [top_db - RANGE_DB, top_db]."""
    levels = (_picture(stft_db(audio), low) - (top_db - RANGE_DB)) / RANGE_DB
    return encode_png(colour_levels(levels))


def difference_png(original: np.ndarray, decoded: np.ndarray, top_db: float, low: bool = False) -> bytes:
    """Decoded minus original in dB, where either is within RANGE_DB of the peak (silence on both sides is white)."""
    n = min(original.size, decoded.size)
    a, b = _picture(stft_db(original[:n]), low), _picture(stft_db(decoded[:n]), low)
    audible = np.maximum(a, b) > top_db - RANGE_DB
    return encode_png(colour_signed(np.where(audible, (b - a) / DIFF_DB, 0.0)))


def waveform_png(audio: np.ndarray) -> bytes:
    """Min/max envelope per column, on a fixed [-1, 1] scale (so clipping and level changes are visible)."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    if not x.size:
        x = np.zeros(1)
    groups = np.array_split(x, min(WIDTH, x.size))
    high = np.array([g.max() for g in groups])
    low = np.array([g.min() for g in groups])
    if high.size < WIDTH:
        pick = (np.arange(WIDTH) * high.size) // WIDTH
        high, low = high[pick], low[pick]
    rows = (1.0 - np.arange(WAVE_HEIGHT)[:, None] / (WAVE_HEIGHT - 1)) * 2.0 - 1.0   # +1 at the top
    step = 2.0 / (WAVE_HEIGHT - 1)
    inside = (rows >= low[None, :] - step / 2) & (rows <= high[None, :] + step / 2)
    image = np.full((WAVE_HEIGHT, WIDTH, 3), 24, dtype=np.uint8)
    image[WAVE_HEIGHT // 2] = 70
    image[inside] = (110, 190, 255)
    return encode_png(image)


def peak_db(audio: np.ndarray) -> float:
    """The top of the dB scale an input's pictures share: its original's spectrogram peak."""
    return float(stft_db(audio).max())
