"""How far the quantized encoder drifts from the FP32 one, measured the way the runtime will use it.

Both encoder step graphs stream each held-out clip from zero state, step by step through the runtime's Stepper,
each carrying its own state (apucodec/calibration/streams.py), so what the INT8 graph feeds back into its caches
counts; the RVQ is the runtime's NumPy one and the decoder is the FP32 decoder step graph of the same step size.
Numbers, on held-out clips only (calibrating and scoring on the same audio flatters the quantizer):

* latent SNR: FP32 latent vs INT8 latent over every frame of every clip, pooled; the worst clip; and the frames
  within EDGE_FRAMES of each clip's ends, where the bounds masks act (a mask quantized coarsely shows there);
* code agreement per codebook: share of identical RVQ codes — the codes are what an .apc file stores, so this is
  what a listener of a decoded file is exposed to. Later codebooks quantize residuals and disagree more once an
  earlier level differs;
* end-to-end SNR: input audio vs decode(RVQ(encode(x))) for both encoders over the whole clip, and the delta.

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
from apucodec.calibration.streams import graph_stepper, stream
from apucodec.contract.steps import frames_for_length
from apucodec.dsp.metrics import si_sdr, snr_db
from apucodec.errors import ApucodecError, first_line
from apucodec.model.directory import ModelDir
from apucodec.runtime.eps import CPU
from apucodec.runtime.onnx_step import onnx_step
from apucodec.runtime.ort_options import session_options as runtime_session_options
from apucodec.runtime.rvq_projected import load_rvq
from apucodec.runtime.stage_plan import SessionSettings

GRAPH_OPTIMIZATION = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
EDGE_FRAMES = 16


@dataclass(frozen=True)
class StepGraphSession:
    """A step graph's manifest role and an ONNX Runtime session over it."""

    role: str
    session: ort.InferenceSession


def session_options(threads: int = 0) -> ort.SessionOptions:
    """The runtime's session options (apucodec.runtime.sessions), at the optimisation level that ships."""
    options = runtime_session_options(SessionSettings(threads=threads, spin=True))
    options.graph_optimization_level = GRAPH_OPTIMIZATION
    return options


def cpu_session(path: Path, custom_op_domains: Sequence[str] = (), threads: int = 0) -> ort.InferenceSession:
    """A CPU EP session for `path`, registering Quark's custom-op library first when the graph needs it."""
    options = session_options(threads)
    register_custom_ops(options, custom_op_domains)
    try:
        return ort.InferenceSession(str(path), options, providers=[CPU])
    except Exception as exc:  # onnxruntime's Fail / InvalidGraph / NotImplemented
        raise ApucodecError(f"{path}: ONNX Runtime's CPU EP cannot load it ({first_line(exc)})") from None


def _pooled(metric: Any, references: list[np.ndarray], estimates: list[np.ndarray]) -> float:
    return float(metric(np.concatenate([r.ravel() for r in references]),
                        np.concatenate([e.ravel() for e in estimates])))


def _pooled_snr(references: list[np.ndarray], estimates: list[np.ndarray]) -> float:
    return snr_db(np.concatenate([r.ravel() for r in references]), np.concatenate([e.ravel() for e in estimates]))


@dataclass
class FidelityReport:
    clips: int
    seconds: float
    steps: int                            # step calls of the INT8 encoder over all clips
    latent_snr_db: float
    latent_snr_db_worst: float            # the worst clip
    latent_snr_db_edges: float            # frames within EDGE_FRAMES of a clip's ends
    code_agreement: list[float]           # per codebook, 0..1
    e2e_snr_fp32_db: float
    e2e_snr_int8_db: float
    output_snr_db: float                  # INT8-path output vs FP32-path output
    int8_decoder: bool = False            # the INT8 path also decodes with an INT8 decoder (CPU INT8 pass)
    e2e_si_sdr_fp32_db: float = float("nan")   # input vs output, all clips pooled
    e2e_si_sdr_int8_db: float = float("nan")

    @property
    def e2e_snr_delta_db(self) -> float:
        return self.e2e_snr_int8_db - self.e2e_snr_fp32_db

    def to_dict(self) -> dict[str, Any]:
        return {"evaluation_clips": self.clips, "evaluation_seconds": round(self.seconds, 2),
                "evaluation_steps": self.steps, "method": "both step graphs streamed over each clip (Stepper)",
                "latent_snr_db": round(self.latent_snr_db, 2),
                "latent_snr_db_worst_clip": round(self.latent_snr_db_worst, 2),
                "latent_snr_db_edges": round(self.latent_snr_db_edges, 2), "edge_frames": EDGE_FRAMES,
                "code_agreement": [round(a, 4) for a in self.code_agreement],
                "e2e_snr_db": {"fp32": round(self.e2e_snr_fp32_db, 2), "int8": round(self.e2e_snr_int8_db, 2),
                               "delta": round(self.e2e_snr_delta_db, 2)},
                "int8_vs_fp32_output_snr_db": round(self.output_snr_db, 2),
                "e2e_si_sdr_db": {"fp32": round(self.e2e_si_sdr_fp32_db, 2),
                                  "int8": round(self.e2e_si_sdr_int8_db, 2),
                                  "delta": round(self.e2e_si_sdr_int8_db - self.e2e_si_sdr_fp32_db, 2)},
                "int8_path": "INT8 encoder + INT8 decoder" if self.int8_decoder else "INT8 encoder + FP32 decoder",
                "session": {"provider": "CPUExecutionProvider", "graph_optimization": GRAPH_OPTIMIZATION.name}}

    def lines(self) -> list[str]:
        agreement = " ".join(f"{a:.1%}" for a in self.code_agreement)
        return [f"fidelity on {self.clips} held-out clips ({self.seconds:.1f} s, {self.steps} steps streamed; "
                f"CPU EP, {GRAPH_OPTIMIZATION.name}):",
                f"  latent SNR {self.latent_snr_db:.2f} dB (worst clip {self.latent_snr_db_worst:.2f} dB, "
                f"clip edges {self.latent_snr_db_edges:.2f} dB)",
                f"  code agreement per codebook: {agreement}",
                f"  end-to-end SNR: FP32 {self.e2e_snr_fp32_db:.2f} dB, INT8 {self.e2e_snr_int8_db:.2f} dB "
                f"(delta {self.e2e_snr_delta_db:+.2f} dB); INT8 vs FP32 output {self.output_snr_db:.2f} dB",
                f"  end-to-end SI-SDR: FP32 {self.e2e_si_sdr_fp32_db:.2f} dB, INT8 {self.e2e_si_sdr_int8_db:.2f} dB "
                f"(delta {self.e2e_si_sdr_int8_db - self.e2e_si_sdr_fp32_db:+.2f} dB)"]


def _edges(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    return x if n <= 2 * EDGE_FRAMES else np.concatenate([x[..., :EDGE_FRAMES], x[..., -EDGE_FRAMES:]], axis=-1)


def measure_fidelity(model: ModelDir, fp32_encoder: StepGraphSession, int8_encoder: StepGraphSession,
                     decoder: StepGraphSession, clips: Sequence[np.ndarray],
                     int8_decoder: StepGraphSession | None = None) -> FidelityReport:
    """Score the INT8 encoder step graph against the FP32 one, streaming both over `clips` (1-D audio each).

    With `int8_decoder`, the INT8 path decodes with it (the FP32 path keeps `decoder`), so the end-to-end numbers
    are those of a run with both INT8 graphs."""
    if not clips:
        raise ApucodecError("no held-out clips to measure fidelity on")
    rvq = load_rvq(model)
    hop = model.hop
    lat_fp, lat_q, agree, audio_in, out_fp, out_q, worst, steps = [], [], [], [], [], [], np.inf, 0
    for clip in clips:
        clip = np.asarray(clip, dtype=np.float32).reshape(-1)
        frames = frames_for_length(clip.size, hop)
        latents, codes, outputs = [], [], []
        for encoder, dec in ((fp32_encoder, decoder), (int8_encoder, int8_decoder or decoder)):
            # the INT8 graph shares the FP32 graph's step facts (and may not be in the manifest yet)
            stepper = graph_stepper(model, fp32_encoder.role, onnx_step(encoder.session))
            latent = stream(stepper, clip[None], frames)                      # [D, F], whole-file aligned
            if encoder is int8_encoder:
                steps += stepper.steps
            clip_codes = rvq.quantize(np.ascontiguousarray(latent.T))         # [n, F]
            quantized = np.ascontiguousarray(rvq.dequantize(clip_codes).T, dtype=np.float32)
            audio = stream(graph_stepper(model, decoder.role, onnx_step(dec.session)), quantized, frames)
            latents.append(latent)
            codes.append(clip_codes)
            outputs.append(audio[0, : clip.size])
        lat_fp.append(latents[0])
        lat_q.append(latents[1])
        worst = min(worst, snr_db(latents[0], latents[1]))
        agree.append(codes[0] == codes[1])
        audio_in.append(clip)
        out_fp.append(outputs[0])
        out_q.append(outputs[1])
    matches = np.concatenate(agree, axis=1)                                   # [n, total frames]
    return FidelityReport(
        clips=len(clips), seconds=sum(a.size for a in audio_in) / model.config.sample_rate, steps=steps,
        latent_snr_db=_pooled_snr(lat_fp, lat_q), latent_snr_db_worst=float(worst),
        latent_snr_db_edges=_pooled_snr([_edges(x) for x in lat_fp], [_edges(x) for x in lat_q]),
        code_agreement=[float(m) for m in matches.mean(axis=1)],
        e2e_snr_fp32_db=_pooled_snr(audio_in, out_fp), e2e_snr_int8_db=_pooled_snr(audio_in, out_q),
        output_snr_db=_pooled_snr(out_fp, out_q), int8_decoder=int8_decoder is not None,
        e2e_si_sdr_fp32_db=_pooled(si_sdr, audio_in, out_fp), e2e_si_sdr_int8_db=_pooled(si_sdr, audio_in, out_q))
