"""Audio quality metrics in NumPy (torch-free, so benchmarks and the runtime's users can score outputs).

SI-SDR measures waveform fidelity independent of gain; the multi-scale log-mel distance measures what the ear
hears more closely (phase-insensitive), and is the same quantity the training loss minimises.
"""

from __future__ import annotations

import functools
import math

import numpy as np

MEL_SCALES: tuple[tuple[int, int], ...] = ((2048, 80), (1024, 64), (512, 40), (256, 20))  # (fft size, mel bands)


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (higher is better)."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    est = np.asarray(estimate, dtype=np.float64).ravel()
    n = min(ref.size, est.size)
    ref, est = ref[:n] - ref[:n].mean(), est[:n] - est[:n].mean()
    target = (est @ ref) / (ref @ ref + eps) * ref
    noise = est - target
    return float(10 * np.log10((target @ target + eps) / (noise @ noise + eps)))


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain SNR of `estimate` against `reference` in dB, for parity and quantization fidelity checks.

    Exact by construction at the ends, so one definition serves both kinds of caller: a bit-exact estimate (zero
    noise) is +inf, which export parity reports as "bit-exact"; a silent reference with any noise is -inf. No epsilon
    is added, so a tiny error is never rounded into a made-up finite ceiling.
    """
    ref = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum((np.asarray(estimate, dtype=np.float64) - ref) ** 2))
    power = float(np.sum(ref**2))
    if noise == 0.0:
        return math.inf
    if power == 0.0:
        return -math.inf
    return 10.0 * math.log10(power / noise)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular HTK-mel filters, [n_mels, n_fft // 2 + 1], area-normalised (Slaney style)."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_freqs[None, :] - lower) / (center - lower)
    falling = (upper - fft_freqs[None, :]) / (upper - center)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank *= (2.0 / (upper - lower))
    return bank.astype(np.float32)


def _log_mel(audio: np.ndarray, sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    hop = n_fft // 4
    window = np.hanning(n_fft).astype(np.float32)
    padded = np.pad(audio.astype(np.float32), (n_fft // 2, n_fft // 2), mode="reflect")
    n_frames = 1 + (padded.size - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, n_fft), strides=(padded.strides[0] * hop, padded.strides[0])
    )
    mag = np.abs(np.fft.rfft(frames * window, axis=1))
    mel = mag @ mel_filterbank(sample_rate, n_fft, n_mels).T
    return np.log10(np.maximum(mel, 1e-5))


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Mean L1 distance between log10-mel spectrograms over several resolutions (lower is better)."""
    ref = np.asarray(reference, dtype=np.float32).ravel()
    est = np.asarray(estimate, dtype=np.float32).ravel()
    n = min(ref.size, est.size)
    ref, est = ref[:n], est[:n]
    scores = [
        float(np.mean(np.abs(_log_mel(ref, sample_rate, n_fft, n_mels) - _log_mel(est, sample_rate, n_fft, n_mels))))
        for n_fft, n_mels in MEL_SCALES
        if n >= n_fft
    ]
    return float(np.mean(scores)) if scores else float("nan")
