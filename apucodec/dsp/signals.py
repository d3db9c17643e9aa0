"""Generated audio, so that export parity, `bench` and the tests need no audio files.

A graph that only reproduces PyTorch on silence or on one sine proves little: each kind below exercises a different
part of the network's range (steady tones, sweeping chirps, broadband bursts with silent gaps, pitched speech-like
pulses with moving formants). None is ever all zeros, because a codec that outputs silence would pass a parity test
on silence. NumPy only: export (torch), the runtime's tools (torch-free) and the tests all draw from this one place.

Every generator takes a length in samples and a sample rate and returns float64; `signal` gives float32.
"""

from __future__ import annotations

import numpy as np


def _time(n: int, rate: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / rate


def sine(n: int, rate: int, freq: float = 440.0, amp: float = 0.3, phase: float = 0.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * _time(n, rate) + phase)


def tones(n: int, rate: int) -> np.ndarray:
    """A low and a high partial at once: both ends of the spectrum in steady state."""
    return sine(n, rate, 220.0, 0.25) + sine(n, rate, 1760.0, 0.15, 0.3)


def chirp(n: int, rate: int, f0: float = 60.0, f1: float | None = None, amp: float = 0.4) -> np.ndarray:
    """A linear sweep from f0 to f1 (default: up to 16 kHz, kept below the Nyquist rate) over the whole clip."""
    t = _time(n, rate)
    seconds = max(n / rate, 1e-3)
    f1 = min(16000.0, rate / 2.5) if f1 is None else f1
    return amp * np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / seconds * t**2))


def noise_bursts(n: int, rate: int, seed: int = 0, amp: float = 0.2) -> np.ndarray:
    """White noise gated on and off three times a second: broadband onsets and silent gaps."""
    rng = np.random.default_rng(seed)
    gate = np.sin(2 * np.pi * 3.0 * _time(n, rate)) > 0.3
    return amp * rng.standard_normal(n) * gate


def speech_like(n: int, rate: int, seed: int = 1) -> np.ndarray:
    """A glottal-pulse buzz (120 +- 30 Hz) through three drifting formants, with syllable-like envelopes."""
    rng = np.random.default_rng(seed)
    t = _time(n, rate)
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    buzz = (np.cumsum(pitch) / rate % 1.0 < 0.1).astype(np.float64) - 0.1
    voice = np.zeros(n)
    for formant, width in ((700.0, 80.0), (1200.0, 120.0), (2600.0, 200.0)):
        centre = formant * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        voice += np.sin(2 * np.pi * np.cumsum(centre) / rate) * buzz * (width / 200)
    voice *= np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    return 0.3 * voice / (np.max(np.abs(voice)) + 1e-9)


def mixture(n: int, rate: int, seed: int = 0) -> np.ndarray:
    """Tone + chirp + noise bursts + speech-like, peak 0.9: the default material (`bench`'s generated audio)."""
    x = (sine(n, rate, 220.0) + chirp(n, rate, 100.0, min(8000.0, rate / 2.5), 0.3) + noise_bursts(n, rate, seed)
         + speech_like(n, rate, seed))
    return 0.9 * x / np.max(np.abs(x))


SIGNALS = {"tones": tones, "chirp": chirp, "noise_bursts": noise_bursts, "speech_like": speech_like,
           "mixture": mixture}


def signal(kind: str, n: int, rate: int) -> np.ndarray:
    """`n` float32 samples of the named material at `rate`."""
    return SIGNALS[kind](n, rate).astype(np.float32)
