"""Generated test audio in seconds (no files needed): apucodec.dsp.signals' material, plus folders of WAV files.

The signals themselves live in apucodec.dsp.signals (export parity and `bench` use the same ones); this module only
adapts them to the tests' habit of asking for seconds at 44.1 kHz as float32, and adds the tests' own `tonal`
material and `write_folder`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.dsp import signals

RATE = 44100


def _n(seconds: float, rate: int) -> int:
    return int(seconds * rate)


def tone(seconds: float, freq: float = 440.0, rate: int = RATE, amp: float = 0.3) -> np.ndarray:
    return signals.sine(_n(seconds, rate), rate, freq, amp).astype(np.float32)


def chirp(seconds: float, f0: float = 100.0, f1: float = 8000.0, rate: int = RATE, amp: float = 0.3) -> np.ndarray:
    return signals.chirp(_n(seconds, rate), rate, f0, f1, amp).astype(np.float32)


def noise_bursts(seconds: float, rate: int = RATE, seed: int = 0, amp: float = 0.2) -> np.ndarray:
    return signals.noise_bursts(_n(seconds, rate), rate, seed, amp).astype(np.float32)


def speech_like(seconds: float, rate: int = RATE, seed: int = 1) -> np.ndarray:
    return signals.speech_like(_n(seconds, rate), rate, seed).astype(np.float32)


def mixture(seconds: float, seed: int = 0) -> np.ndarray:
    return signals.mixture(_n(seconds, RATE), RATE, seed).astype(np.float32)


def tonal(seconds: float, index: int = 0, rate: int = RATE) -> np.ndarray:
    """A gliding harmonic tone with a slow tremolo and a little noise: easy material a tiny codec learns in seconds."""
    rng = np.random.default_rng(index)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 110 * 2 ** (index / 3)
    x = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.5 * t / seconds)) + 0.1 * np.sin(2 * np.pi * 3 * f0 * t)
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write_folder(folder: Path, seconds: float = 3.0, count: int = 3, rate: int = RATE, kind: str = "mixed") -> Path:
    """A folder of `count` generated WAV files (for training and calibration tests).

    kind "mixed" varies the material (tones, noise bursts, chirps, speech-like); "tonal" is the easy material used
    where a test must see a tiny model learn within seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    makers = [lambda s, i: tone(s, 110 * 2 ** (i / 3)) + noise_bursts(s, seed=i) * 0.3,
              lambda s, i: chirp(s, 80, 6000) * 0.8 + speech_like(s, seed=i) * 0.5,
              lambda s, i: mixture(s, seed=i)]
    if kind == "tonal":
        makers = [lambda s, i: tonal(s, i)]
    for i in range(count):
        audio = makers[i % len(makers)](seconds, i)
        sf.write(folder / f"clip{i}.wav", audio.astype(np.float32), rate)
    return folder
