"""Do static windows stitched together equal the whole-file network? The property the chunked runtime relies on.

A 5 s signal goes through the exported graph window by window, cut and stitched by the runtime's own windowing
(apucodec.runtime.windows: context + chunk + context frames, zeros beyond the file, keep the chunk), and is
compared with PyTorch run once on the whole signal. Away from the file's ends by one receptive field the two must
agree to `TOLERANCE` relative; near the ends they differ legitimately (the whole-file network zero-pads every layer
there, the windows zero-pad only the audio), and that edge error is reported. With GroupNorm the statistics of a
window differ from the file's, so the interior cannot match: reported, not fatal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from apucodec.codec.model import APUCodec
from apucodec.export.parity import cpu_session
from apucodec.export.receptive_field import ReceptiveField
from apucodec.export.signals import signal
from apucodec.export.specs import GraphSpec
from apucodec.model_dir import WindowGeometry
from apucodec.runtime.windows import frame_windows, kept_frames, kept_samples, sample_windows

TOLERANCE = 1e-4
SIGNAL_SECONDS = 5.0


@dataclass
class StitchResult:
    interior_rel_error: float
    edge_rel_error: float
    margin_frames: int  # frames at each end counted as edge (one receptive field)
    frames: int

    @property
    def passed(self) -> bool:
        return self.interior_rel_error <= TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {"signal_seconds": SIGNAL_SECONDS, "frames": self.frames, "margin_frames": self.margin_frames,
                "interior_rel_error": self.interior_rel_error, "edge_rel_error": self.edge_rel_error,
                "tolerance": TOLERANCE, "passed": self.passed}


def _errors(reference: np.ndarray, stitched: np.ndarray, margin: int, per_frame: int) -> tuple[float, float]:
    scale = float(np.max(np.abs(reference))) or 1.0
    err = np.abs(reference.astype(np.float64) - stitched)
    frames = reference.shape[-1] // per_frame
    lo, hi = margin * per_frame, (frames - margin) * per_frame
    interior = float(err[:, lo:hi].max()) / scale if hi > lo else math.nan
    edges = np.concatenate([err[:, :lo], err[:, hi:]], axis=1)
    edge = float(edges.max()) / scale if edges.size else 0.0
    return interior, edge


@torch.no_grad()
def check_stitching(model: APUCodec, specs: dict[str, GraphSpec], paths: dict[str, Any], geometry: WindowGeometry,
                    field: ReceptiveField) -> dict[str, StitchResult]:
    cfg = model.config
    hop = cfg.hop_length
    frames = math.ceil(SIGNAL_SECONDS * cfg.sample_rate / hop)
    audio = np.zeros((1, frames * hop), dtype=np.float32)
    audio[0, :round(SIGNAL_SECONDS * cfg.sample_rate)] = signal("mixture", round(SIGNAL_SECONDS * cfg.sample_rate),
                                                                cfg.sample_rate)
    enc, dec = specs["encoder"], specs["decoder"]
    encoder = cpu_session(paths["encoder"])
    decoder = cpu_session(paths["decoder"])

    latent_ref = model.encoder(torch.from_numpy(audio)[None])
    rows = [kept_frames(encoder.run([enc.output.name], {enc.input.name: w.samples.reshape(enc.input.shape)})[0], w,
                        geometry) for w in sample_windows(audio[0], geometry)]
    latent_stitched = np.concatenate(rows).T
    margin_enc = field.encoder.context_frames
    enc_result = StitchResult(*_errors(latent_ref[0].numpy(), latent_stitched, margin_enc, 1), margin_enc, frames)

    quantized = model.quantizer.dequantize(model.quantizer.quantize_codes(latent_ref))
    audio_ref = model.decoder(quantized)[0].numpy()
    pieces = [kept_samples(decoder.run([dec.output.name], {dec.input.name: w.latent[None]})[0], w, geometry)
              for w in frame_windows(quantized[0].numpy().T.astype(np.float32), audio.shape[-1], geometry)]
    audio_stitched = np.concatenate(pieces)[None]
    margin_dec = field.decoder.context_frames
    dec_result = StitchResult(*_errors(audio_ref, audio_stitched, margin_dec, hop), margin_dec, frames)
    return {"encoder": enc_result, "decoder": dec_result}
