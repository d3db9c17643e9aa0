"""Whole-file encode -> RVQ -> decode through any pair of windowed graphs, with the runtime's own windowing.

The runtime chooses its graphs itself (FP32 on the CPU, the NPU INT8 encoder where forced); the CPU INT8 graphs
are not wired into it yet, so the benchmarks that compare graph variants run them through this helper, which uses
the runtime's windowing functions (runtime/windows.py) and NumPy RVQ, so results match `apucodec run` for the same
graphs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from apucodec.runtime.windows import frame_windows, kept_frames, kept_samples, sample_windows

from apucodec.model_dir import WindowGeometry
from apucodec.runtime.rvq import NumpyRVQ


def cpu_session(path: Path | str, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def window_dbfs(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-20))


def codec_run(encoder: ort.InferenceSession, decoder: ort.InferenceSession, rvq: NumpyRVQ,
              geometry: WindowGeometry, audio: np.ndarray,
              quiet: tuple[ort.InferenceSession, ort.InferenceSession, float] | None = None) -> np.ndarray:
    """The codec's output for `audio` (1-D float32), the same length as the input.

    `quiet` = (encoder, decoder, dBFS): windows whose input RMS is below dBFS run through these graphs instead
    (e.g. FP32 for quiet passages, where static INT8 ranges set by loud audio lose the signal).
    """
    enc_in, dec_in = encoder.get_inputs()[0].name, decoder.get_inputs()[0].name
    rows = []
    quiet_windows = set()
    for window in sample_windows(audio, geometry):
        use = encoder
        if quiet is not None and window_dbfs(window.samples) < quiet[2]:
            use = quiet[0]
            quiet_windows.add(window.index)
        latent = use.run(None, {enc_in: window.samples.reshape(1, 1, -1)})[0]
        rows.append(kept_frames(latent, window, geometry))
    latent_rows = np.concatenate(rows)
    quantized = rvq.dequantize(rvq.quantize(latent_rows))
    out = []
    for window in frame_windows(quantized.astype(np.float32), audio.size, geometry):
        use = quiet[1] if quiet is not None and window.index in quiet_windows else decoder
        decoded = use.run(None, {dec_in: window.latent[None]})[0]
        out.append(kept_samples(decoded, window, geometry))
    return np.concatenate(out)[: audio.size]
