"""The shared SNR: one definition for export parity and quantization fidelity, exact at both ends."""

from __future__ import annotations

import math

import numpy as np

from apucodec.dsp.metrics import snr_db


def test_snr_is_infinite_for_an_exact_copy_and_finite_otherwise():
    ref = np.sin(np.linspace(0, 20, 1000)).astype(np.float32)
    assert snr_db(ref, ref.copy()) == math.inf
    noisy = ref + np.float32(1e-3) * np.cos(np.linspace(0, 7, 1000)).astype(np.float32)
    expected = 10 * math.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((noisy - ref).astype(np.float64) ** 2))
    assert math.isclose(snr_db(ref, noisy), expected, rel_tol=1e-6)
    assert snr_db(ref, 0.5 * ref) < snr_db(ref, 0.9 * ref)  # more error, lower SNR


def test_snr_of_silence_against_noise_is_minus_infinity():
    silence = np.zeros(64, np.float32)
    assert snr_db(silence, silence) == math.inf
    assert snr_db(silence, np.full(64, 1e-6, np.float32)) == -math.inf
