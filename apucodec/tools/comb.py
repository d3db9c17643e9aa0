"""The frame-rate comb: how far spectral lines at multiples of the codec's frame rate stand above their neighbourhood.

A decoder that upsamples with transposed convs can add a periodic pattern every hop (512 samples), heard as a buzz:
lines at k * 86.13 Hz, and steady tones at the input rates of the later upsamplers (fs/8 and fs/4 for strides
8, 8, 4, 2). The measure, per signal:
  * a Welch power spectrum (Hann, n_fft a multiple of the hop so every harmonic sits on a bin centre);
  * for each harmonic k * frame_rate between 2 and 10 kHz: the peak power within one bin of it over the median power
    of the bins within half a frame rate on either side (the peak's own bins left out), in dB;
  * comb_db: the mean of those levels (about 0 dB for a signal without lines, e.g. noise);
  * fs8_db, fs4_db: the same level at fs/8 and fs/4.
Music can have real lines at some harmonics, so compare a codec's output with its input (`comb_db` of both).
NumPy only: `apucodec eval` and the benchmarks on the deployed runtime use it without torch.
"""

from __future__ import annotations

import numpy as np

BAND_HZ = (2000.0, 10000.0)


def welch_power(audio: np.ndarray, n_fft: int) -> np.ndarray:
    """Mean |FFT|^2 over Hann-windowed frames with 50% overlap (one zero-padded frame for short signals)."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    hop = n_fft // 2
    starts = range(0, x.size - n_fft + 1, hop)
    window = np.hanning(n_fft)
    frames = np.stack([x[s:s + n_fft] * window for s in starts])
    return np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)


def line_level_db(power: np.ndarray, freq: float, bin_hz: float, half_width_hz: float) -> float:
    """Peak power within one bin of `freq` over the median power of its neighbourhood (+-half_width_hz), in dB."""
    centre = int(round(freq / bin_hz))
    span = max(3, int(half_width_hz / bin_hz))
    lo, hi = max(0, centre - span), min(power.size, centre + span + 1)
    peak = power[max(0, centre - 1):centre + 2].max()
    neighbours = np.concatenate([power[lo:max(lo, centre - 2)], power[centre + 3:hi]])
    floor = np.median(neighbours) if neighbours.size else peak
    tiny = 1e-30
    return float(10 * np.log10((peak + tiny) / (floor + tiny)))


def frame_rate_comb(audio: np.ndarray, sample_rate: int, hop: int,
                    band: tuple[float, float] = BAND_HZ, n_fft: int | None = None) -> dict[str, float]:
    """comb_db (mean line level of the frame-rate harmonics in `band`), fs8_db and fs4_db, all in dB."""
    n_fft = n_fft or hop * 32  # 16384 at the spec's hop: 2.7 Hz bins, each harmonic 32 bins from the next
    frame_rate = sample_rate / hop
    power = welch_power(audio, n_fft)
    bin_hz = sample_rate / n_fft
    half = frame_rate / 2
    first = int(np.ceil(band[0] / frame_rate))
    last = int(np.floor(band[1] / frame_rate))
    levels = [line_level_db(power, k * frame_rate, bin_hz, half) for k in range(first, last + 1)]
    return {"comb_db": float(np.mean(levels)),
            "fs8_db": line_level_db(power, sample_rate / 8, bin_hz, half),
            "fs4_db": line_level_db(power, sample_rate / 4, bin_hz, half)}
