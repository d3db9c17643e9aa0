"""Does each ONNX graph compute what PyTorch computes? Measured on the ORT CPU EP, on non-trivial material.

The reference is the original training module (weight norm still parametrized), so this also checks the folding.
Decoder inputs are real quantized latents of the same material (encoder + RVQ), the distribution the decoder sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from apucodec.codec.model import APUCodec
from apucodec.export.signals import SIGNALS, signal
from apucodec.export.specs import GraphSpec

MIN_SNR_DB = 80.0


def cpu_session(path: Path, threads: int = 2) -> ort.InferenceSession:
    """An ORT CPU session that does not spin: its idle threads would otherwise busy-wait between runs and starve
    the PyTorch reference computed in between (measured: 10x slower torch convs on 2 cores)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - estimate) ** 2))
    power = float(np.sum(reference.astype(np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(power / noise)


@dataclass
class GraphParity:
    per_signal: dict[str, dict[str, float]]

    @property
    def snr_db(self) -> float:
        return min(s["snr_db"] for s in self.per_signal.values())

    @property
    def max_abs_error(self) -> float:
        return max(s["max_abs_error"] for s in self.per_signal.values())

    def to_dict(self) -> dict[str, Any]:
        def finite(v: float) -> float | None:  # JSON has no inf; None means bit-exact
            return None if math.isinf(v) else round(v, 3)

        return {"provider": "CPUExecutionProvider", "snr_db": finite(self.snr_db),
                "max_abs_error": self.max_abs_error, "min_snr_db_required": MIN_SNR_DB,
                "signals": {k: {"snr_db": finite(v["snr_db"]), "max_abs_error": v["max_abs_error"]}
                            for k, v in self.per_signal.items()}}


def _compare(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    return {"snr_db": snr_db(reference, estimate),
            "max_abs_error": float(np.max(np.abs(reference.astype(np.float64) - estimate)))}


@torch.no_grad()
def check_parity(model: APUCodec, specs: dict[str, GraphSpec], paths: dict[str, Path]) -> dict[str, GraphParity]:
    """Parity of the encoder and decoder graphs at `paths` against `model`, one window per kind of material."""
    enc, dec = specs["encoder"], specs["decoder"]
    encoder = cpu_session(paths["encoder"])
    decoder = cpu_session(paths["decoder"])
    window = enc.input.shape[-1]
    results: dict[str, dict[str, dict[str, float]]] = {"encoder": {}, "decoder": {}}
    for kind in SIGNALS:
        audio = signal(kind, window, model.config.sample_rate).reshape(enc.input.shape)
        latent_ref = model.encoder(torch.from_numpy(audio))
        latent_onnx = encoder.run([enc.output.name], {enc.input.name: audio})[0]
        results["encoder"][kind] = _compare(latent_ref.numpy(), latent_onnx)

        quantized = model.quantizer.dequantize(model.quantizer.quantize_codes(latent_ref))
        audio_ref = model.decoder(quantized).numpy()
        audio_onnx = decoder.run([dec.output.name], {dec.input.name: quantized.numpy().astype(np.float32)})[0]
        results["decoder"][kind] = _compare(audio_ref, audio_onnx)
    return {role: GraphParity(per_signal) for role, per_signal in results.items()}
