"""The comb measure reads ~0 dB on noise and the level that was put in on a synthetic comb."""

import numpy as np
import pytest

from apucodec.tools.comb import frame_rate_comb

RATE, HOP, N_FFT = 44100, 512, 16384


def _noise(seconds: float = 8.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.05


def _line_amplitude(level_db: float, sigma: float) -> float:
    """Amplitude of a bin-centred sine whose Hann periodogram peak is level_db above white noise of std sigma."""
    window = np.hanning(N_FFT)
    noise_power = sigma**2 * np.sum(window**2)
    return 2 * np.sqrt(10 ** (level_db / 10) * noise_power) / np.sum(window)


def _lines(freqs: list[float], amplitude: float, n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    phases = np.random.default_rng(5).uniform(0, 2 * np.pi, len(freqs))
    return sum(amplitude * np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases, strict=True))


def test_noise_has_no_comb():
    result = frame_rate_comb(_noise(), RATE, HOP)
    assert abs(result["comb_db"]) < 1.5 and abs(result["fs8_db"]) < 3 and abs(result["fs4_db"]) < 3, result


@pytest.mark.parametrize("level_db", [10.0, 20.0])
def test_synthetic_comb_reads_its_level(level_db):
    noise = _noise()
    frame_rate = RATE / HOP
    harmonics = [k * frame_rate for k in range(1, 200) if k * frame_rate < 20000]
    audio = noise + _lines(harmonics, _line_amplitude(level_db, 0.05), noise.size)
    result = frame_rate_comb(audio, RATE, HOP)
    assert abs(result["comb_db"] - level_db) < 1.5, result
    assert abs(result["fs8_db"] - level_db) < 3 and abs(result["fs4_db"] - level_db) < 3, result


def test_off_grid_lines_do_not_count_and_tones_are_separate():
    noise = _noise()
    frame_rate = RATE / HOP
    off_grid = [(k + 0.5) * frame_rate for k in range(23, 117)]  # halfway between harmonics: not the comb
    tones = [RATE / 8, RATE / 4]
    audio = noise + _lines(off_grid, _line_amplitude(20, 0.05), noise.size) \
        + _lines(tones, _line_amplitude(25, 0.05), noise.size)
    result = frame_rate_comb(audio, RATE, HOP)
    assert result["fs8_db"] > 22 and result["fs4_db"] > 22, result
    # fs/8 is itself the 64th harmonic, one of 94 in the band: it lifts the mean by about 25/94 dB, no more
    assert result["comb_db"] < 2.0, result
