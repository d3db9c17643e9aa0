"""Does each step graph, streamed step by step, compute what the whole-file PyTorch network computes?

Measured on the ORT CPU EP, on non-trivial material whose length is not a whole number of frames, through the
runtime's own Stepper (buffering, state, bounds, delay, flush), over the whole output: the file's edges included.
The reference is the original training module (weight norm still parametrized), so this also checks the folding.
Decoder inputs are real quantized latents of the same material (encoder + RVQ), the distribution the decoder sees.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from apucodec.codec.model import APUCodec
from apucodec.dsp.metrics import snr_db
from apucodec.dsp.signals import SIGNALS, signal
from apucodec.export.streaming import StepNetwork
from apucodec.runtime.eps import CPU
from apucodec.runtime.onnx_step import onnx_step
from apucodec.runtime.ort_options import session_options
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.runtime.stepper import Stepper

MIN_SNR_DB = 80.0
PARITY_SECONDS = 1.5


def cpu_session(path: Path, threads: int = 2) -> ort.InferenceSession:
    """An ORT CPU session that does not spin: its idle threads would otherwise busy-wait between runs and starve
    the PyTorch reference computed in between (measured: 10x slower torch convs on 2 cores)."""
    return ort.InferenceSession(str(path), session_options(SessionSettings(threads=threads)), providers=[CPU])


@dataclass
class GraphParity:
    per_signal: dict[str, dict[str, float]]

    @property
    def snr_db(self) -> float:
        return min(s["snr_db"] for s in self.per_signal.values())

    @property
    def max_abs_error(self) -> float:
        return max(s["max_abs_error"] for s in self.per_signal.values())

    @property
    def edge_max_abs_error(self) -> float:
        """Largest error within 16 frames of either end of the file (where windows used to fail)."""
        return max(s["edge_max_abs_error"] for s in self.per_signal.values())

    def to_dict(self) -> dict[str, Any]:
        def finite(v: float) -> float | None:  # JSON has no inf; None means bit-exact
            return None if math.isinf(v) else round(v, 3)

        return {"provider": "CPUExecutionProvider", "reference": "whole-file PyTorch", "snr_db": finite(self.snr_db),
                "max_abs_error": self.max_abs_error, "edge_max_abs_error": self.edge_max_abs_error,
                "min_snr_db_required": MIN_SNR_DB,
                "signals": {k: {"snr_db": finite(v["snr_db"]), "max_abs_error": v["max_abs_error"],
                                "edge_max_abs_error": v["edge_max_abs_error"]} for k, v in self.per_signal.items()}}


def _compare(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    return {"snr_db": snr_db(reference, estimate),
            "max_abs_error": float(np.max(np.abs(reference.astype(np.float64) - estimate)))}


def net_stepper(session: ort.InferenceSession, net: Any, cfg: Any, delay_samples: int | None = None,
                **options: Any) -> Stepper:
    """The runtime's own step function and Stepper over an ORT CPU session: parity checks exactly what
    `apucodec run` will do. The step facts come from the step network the graph was exported from."""
    delay = net.delay_samples if delay_samples is None else delay_samples
    return Stepper.for_stage(onnx_step(session), net.kind, hop=cfg.hop_length, latent_dim=cfg.latent_dim,
                             delay_samples=delay, step_frames=net.step_frames, state_size=net.state_size,
                             horizon=net.horizon_frames, **options)


def _streamed(stepper: Stepper, x: np.ndarray, total_frames: int, piece: int) -> np.ndarray:
    """Feed `x` [C, n] in pieces of `piece` input samples (not a multiple of the step: the buffering is tested too)."""
    outs = [stepper.push(x[:, i: i + piece]) for i in range(0, x.shape[1], piece)]
    return np.concatenate([*outs, stepper.finish(total_frames)], axis=1)


def _compare_edges(reference: np.ndarray, estimate: np.ndarray, edge: int) -> dict[str, float]:
    ref, est = reference.reshape(reference.shape[0], -1), estimate.reshape(estimate.shape[0], -1)
    found = _compare(ref, est)
    n = ref.shape[-1]
    head, tail = slice(0, min(edge, n)), slice(max(n - edge, 0), n)
    found["edge_max_abs_error"] = float(max(np.max(np.abs(ref[:, s].astype(np.float64) - est[:, s]))
                                            for s in (head, tail)))
    return found


@torch.no_grad()
def parity_material(model: Any, seconds: float) -> Iterator[tuple[str, np.ndarray, Any, Any, np.ndarray]]:
    """What every parity check compares on, per test signal: the audio [1, 1, frames * hop] (a length that is not a
    whole number of frames, zero-padded), and the whole-file model's latent, quantized latent and decoded audio."""
    cfg = model.config
    hop = cfg.hop_length
    length = int(seconds * cfg.sample_rate) + 101  # not a whole number of frames: the last frame is partial
    frames = -(-length // hop)
    for kind in SIGNALS:
        audio = np.zeros((1, 1, frames * hop), dtype=np.float32)
        audio[..., :length] = signal(kind, length, cfg.sample_rate)
        latent_ref = model.encoder(torch.from_numpy(audio))
        quantized = model.quantizer.dequantize(model.quantizer.quantize_codes(latent_ref))
        yield kind, audio, latent_ref, quantized, model.decoder(quantized).numpy()[0]


@torch.no_grad()
def check_parity(model: APUCodec, networks: dict[str, StepNetwork], paths: dict[str, Path],
                 seconds: float = PARITY_SECONDS) -> dict[str, GraphParity]:
    """Each step graph at `paths` (role -> file), run step by step on ORT as the runtime runs it, against the
    whole-file PyTorch model (`model`, weight norm still parametrized, so the folding is checked too)."""
    cfg = model.config
    hop = cfg.hop_length
    results: dict[str, dict[str, dict[str, float]]] = {role: {} for role in networks}
    for kind, audio, latent_ref, quantized, audio_ref in parity_material(model, seconds):
        frames = audio.shape[-1] // hop
        for role, net in networks.items():
            stepper = net_stepper(cpu_session(paths[role]), net, cfg)
            if net.kind == "encoder":
                got = _streamed(stepper, audio[0], frames, 3 * hop + 17)
                results[role][kind] = _compare_edges(latent_ref.numpy()[0], got, 16)
            else:
                got = _streamed(stepper, quantized.numpy()[0].astype(np.float32), frames, 5)
                # DAC's odd strides end its whole-file output a few samples early: compare what it has
                results[role][kind] = _compare_edges(audio_ref, got[..., : audio_ref.shape[-1]], 16 * hop)
    return {role: GraphParity(per_signal) for role, per_signal in results.items()}
