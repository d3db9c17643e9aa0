"""How far the quantized encoder drifts from the FP32 one, measured the way the runtime will use it.

Three numbers, on held-out windows only (calibrating and scoring on the same audio flatters the quantizer):

* latent SNR: FP32 latent vs INT8 latent over the chunk frames the runtime keeps;
* code agreement per codebook: share of identical RVQ codes (NumPy RVQ, the runtime's own) — the codes are what
  an .apc file stores, so this is what a listener of a decoded file is exposed to. Later codebooks quantize
  residuals and disagree more once an earlier level differs;
* end-to-end SNR: input audio vs decode(RVQ(encode(x))) for both encoders over the chunk samples, and the delta.

Sessions use ONNX Runtime's CPU EP with the default graph optimisation level (ORT_ENABLE_ALL), the level the
runtime uses: the same QDQ graph can score differently at other levels (ORT fuses QDQ pairs into integer kernels
at some levels and not others), so fidelity must be measured at the level that ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from apucodec.calibration.custom_ops import register_custom_ops
from apucodec.errors import ApucodecError
from apucodec.metrics import si_sdr, snr_db
from apucodec.model_dir import WindowGeometry
from apucodec.runtime.rvq import NumpyRVQ

GRAPH_OPTIMIZATION = ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def session_options(threads: int = 0) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = GRAPH_OPTIMIZATION
    if threads:
        options.intra_op_num_threads = threads
    return options


def cpu_session(path: Path, custom_op_domains: Sequence[str] = (), threads: int = 0) -> ort.InferenceSession:
    """A CPU EP session for `path`, registering Quark's custom-op library first when the graph needs it."""
    options = session_options(threads)
    register_custom_ops(options, custom_op_domains)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail / InvalidGraph / NotImplemented
        raise ApucodecError(f"{path}: ONNX Runtime's CPU EP cannot load it ({str(exc).splitlines()[0]})") from None


def _pooled_snr(references: list[np.ndarray], estimates: list[np.ndarray]) -> float:
    return snr_db(np.concatenate([r.ravel() for r in references]), np.concatenate([e.ravel() for e in estimates]))


@dataclass
class FidelityReport:
    windows: int
    latent_snr_db: float
    latent_snr_db_worst: float
    code_agreement: list[float]           # per codebook, 0..1
    e2e_snr_fp32_db: float
    e2e_snr_int8_db: float
    output_snr_db: float                  # INT8-path output vs FP32-path output
    e2e_si_sdr_fp32_db: float | None = None   # mean over windows of SI-SDR(input, output)
    e2e_si_sdr_int8_db: float | None = None
    decoder: str = "fp32"                 # which decoder the INT8 path used: "fp32", or "int8" (CPU INT8 graphs)

    @property
    def e2e_snr_delta_db(self) -> float:
        return self.e2e_snr_int8_db - self.e2e_snr_fp32_db

    def to_dict(self) -> dict[str, Any]:
        return {"evaluation_windows": self.windows, "latent_snr_db": round(self.latent_snr_db, 2),
                "latent_snr_db_worst_window": round(self.latent_snr_db_worst, 2),
                "code_agreement": [round(a, 4) for a in self.code_agreement],
                "e2e_snr_db": {"fp32": round(self.e2e_snr_fp32_db, 2), "int8": round(self.e2e_snr_int8_db, 2),
                               "delta": round(self.e2e_snr_delta_db, 2)},
                "int8_vs_fp32_output_snr_db": round(self.output_snr_db, 2),
                **({"e2e_si_sdr_db": {"fp32": round(self.e2e_si_sdr_fp32_db, 2),
                                      "int8": round(self.e2e_si_sdr_int8_db, 2),
                                      "delta": round(self.e2e_si_sdr_int8_db - self.e2e_si_sdr_fp32_db, 2)}}
                   if self.e2e_si_sdr_fp32_db is not None and self.e2e_si_sdr_int8_db is not None else {}),
                "int8_path_decoder": self.decoder,
                "session": {"provider": "CPUExecutionProvider", "graph_optimization": GRAPH_OPTIMIZATION.name}}

    def lines(self) -> list[str]:
        agreement = " ".join(f"{a:.1%}" for a in self.code_agreement)
        lines = [f"fidelity on {self.windows} held-out windows (CPU EP, {GRAPH_OPTIMIZATION.name}):",
                 f"  latent SNR {self.latent_snr_db:.2f} dB (worst window {self.latent_snr_db_worst:.2f} dB)",
                 f"  code agreement per codebook: {agreement}",
                 f"  end-to-end SNR: FP32 {self.e2e_snr_fp32_db:.2f} dB, INT8 {self.e2e_snr_int8_db:.2f} dB "
                 f"(delta {self.e2e_snr_delta_db:+.2f} dB); INT8 vs FP32 output {self.output_snr_db:.2f} dB"]
        if self.e2e_si_sdr_fp32_db is not None and self.e2e_si_sdr_int8_db is not None:
            lines.append(f"  end-to-end SI-SDR (mean over windows): FP32 {self.e2e_si_sdr_fp32_db:.2f} dB, INT8 "
                         f"{self.e2e_si_sdr_int8_db:.2f} dB (delta "
                         f"{self.e2e_si_sdr_int8_db - self.e2e_si_sdr_fp32_db:+.2f} dB, {self.decoder} decoder)")
        return lines


def _run(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def measure_fidelity(fp32_encoder: ort.InferenceSession, int8_encoder: ort.InferenceSession,
                     decoder: ort.InferenceSession, codebooks: np.ndarray, geometry: WindowGeometry,
                     windows: Sequence[np.ndarray],
                     int8_decoder: ort.InferenceSession | None = None) -> FidelityReport:
    """Score the INT8 encoder against the FP32 one on `windows` ([1, 1, window_samples] each).

    With `int8_decoder`, the INT8 path decodes with it (CPU INT8: both graphs quantized) instead of `decoder`.
    """
    if not windows:
        raise ApucodecError("no held-out windows to measure fidelity on")
    rvq = NumpyRVQ(codebooks)
    frames = slice(geometry.context_frames, geometry.context_frames + geometry.chunk_frames)
    samples = slice(geometry.context_samples, geometry.context_samples + geometry.chunk_samples)
    lat_fp, lat_q, agree, audio_in, out_fp, out_q, worst = [], [], [], [], [], [], np.inf
    for window in windows:
        latents = []
        codes = []
        outputs = []
        for encoder, decoder_used in ((fp32_encoder, decoder), (int8_encoder, int8_decoder or decoder)):
            latent = _run(encoder, window)                         # [1, D, F]
            rows = latent[0].T                                     # [F, D]
            window_codes = rvq.quantize(rows)                      # [n, F]
            quantized = rvq.dequantize(window_codes).T[None]       # [1, D, F]
            outputs.append(_run(decoder_used, np.ascontiguousarray(quantized, dtype=np.float32))[0, 0, samples])
            latents.append(latent[0, :, frames])
            codes.append(window_codes[:, frames])
        lat_fp.append(latents[0])
        lat_q.append(latents[1])
        worst = min(worst, snr_db(latents[0], latents[1]))
        agree.append(codes[0] == codes[1])
        audio_in.append(window[0, 0, samples])
        out_fp.append(outputs[0])
        out_q.append(outputs[1])
    matches = np.concatenate(agree, axis=1)                        # [n, total chunk frames]
    si_fp = float(np.mean([si_sdr(a, o) for a, o in zip(audio_in, out_fp, strict=True)]))
    si_q = float(np.mean([si_sdr(a, o) for a, o in zip(audio_in, out_q, strict=True)]))
    return FidelityReport(
        windows=len(windows), latent_snr_db=_pooled_snr(lat_fp, lat_q), latent_snr_db_worst=float(worst),
        code_agreement=[float(m) for m in matches.mean(axis=1)],
        e2e_snr_fp32_db=_pooled_snr(audio_in, out_fp), e2e_snr_int8_db=_pooled_snr(audio_in, out_q),
        output_snr_db=_pooled_snr(out_fp, out_q), e2e_si_sdr_fp32_db=si_fp, e2e_si_sdr_int8_db=si_q,
        decoder="int8" if int8_decoder is not None else "fp32")
