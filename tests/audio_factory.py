"""Generated test audio (no files needed): tones, chirps, noise bursts and a speech-like buzz.

Shared by every test module that needs real-looking input; nothing here is ever all zeros, because a codec that
outputs silence would pass a parity test on silence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 44100


def tone(seconds: float, freq: float = 440.0, rate: int = RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chirp(seconds: float, f0: float = 100.0, f1: float = 8000.0, rate: int = RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    k = (f1 - f0) / seconds
    return (amp * np.sin(2 * np.pi * (f0 * t + 0.5 * k * t**2))).astype(np.float32)


def noise_bursts(seconds: float, rate: int = RATE, seed: int = 0, amp: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * rate)).astype(np.float32) * amp
    gate = (np.sin(2 * np.pi * 3.0 * np.arange(x.size) / rate) > 0.3).astype(np.float32)
    return x * gate


def speech_like(seconds: float, rate: int = RATE, seed: int = 1) -> np.ndarray:
    """A glottal-pulse buzz through moving formant resonances, with syllable-like amplitude envelopes."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = np.cumsum(f0) / rate
    buzz = ((phase % 1.0) < 0.1).astype(np.float32) - 0.1
    out = np.zeros(n, dtype=np.float32)
    for formant, width in ((700, 80), (1200, 120), (2600, 200)):
        center = formant * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        out += np.sin(2 * np.pi * np.cumsum(center) / rate).astype(np.float32) * buzz * (width / 200)
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    out = out * envelope
    return (0.3 * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


def mixture(seconds: float, seed: int = 0) -> np.ndarray:
    x = tone(seconds, 220) + chirp(seconds) + noise_bursts(seconds, seed=seed) + speech_like(seconds, seed=seed)
    return (0.9 * x / np.max(np.abs(x))).astype(np.float32)


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
