"""Test material for parity and stitching checks, generated so export needs no audio files.

A graph that only reproduces PyTorch on silence or on one sine proves little: each kind below exercises a different
part of the network's range (steady tones, sweeping chirps, broadband bursts with silent gaps, pitched speech-like
pulses with moving formants). None is ever all zeros.
"""

from __future__ import annotations

import numpy as np


def _time(n: int, rate: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / rate


def tones(n: int, rate: int) -> np.ndarray:
    t = _time(n, rate)
    return 0.25 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 1760 * t + 0.3)


def chirp(n: int, rate: int) -> np.ndarray:
    t = _time(n, rate)
    seconds = max(n / rate, 1e-3)
    f0, f1 = 60.0, min(16000.0, rate / 2.5)
    return 0.4 * np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / seconds * t**2))


def noise_bursts(n: int, rate: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gate = np.sin(2 * np.pi * 5.0 * _time(n, rate)) > 0.2
    return 0.3 * rng.standard_normal(n) * gate


def speech_like(n: int, rate: int, seed: int = 11) -> np.ndarray:
    """Glottal pulses (110-150 Hz) through three drifting formants, with syllable-rate envelopes."""
    rng = np.random.default_rng(seed)
    t = _time(n, rate)
    pitch = 130 + 20 * np.sin(2 * np.pi * 0.7 * t)
    pulses = (np.cumsum(pitch / rate) % 1.0 < 0.08).astype(np.float64) - 0.08
    voice = np.zeros(n)
    for formant in (650.0, 1150.0, 2500.0):
        drift = formant * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t))
        voice += pulses * np.sin(2 * np.pi * np.cumsum(drift) / rate)
    envelope = np.clip(np.sin(2 * np.pi * 3.5 * t), 0.05, None)
    return 0.5 * voice * envelope / (np.max(np.abs(voice)) + 1e-12)


def mixture(n: int, rate: int) -> np.ndarray:
    x = tones(n, rate) + chirp(n, rate) + noise_bursts(n, rate) + speech_like(n, rate)
    return 0.9 * x / np.max(np.abs(x))


SIGNALS = {"tones": tones, "chirp": chirp, "noise_bursts": noise_bursts, "speech_like": speech_like,
           "mixture": mixture}


def signal(kind: str, n: int, rate: int) -> np.ndarray:
    """`n` float32 samples of the named material at `rate`."""
    return SIGNALS[kind](n, rate).astype(np.float32)
