"""Quiet steps run on the FP32 step graph: an INT8 graph is accurate only over the levels it was calibrated on.

Why: static INT8 activations cover a fixed range per tensor, set by the calibration audio's peaks; uint8 spans
about 48 dB below them. Audio far quieter than the calibration material falls under the lowest step in the early
layers and comes out as noise. Measured on the bundled model, a -60 dBFS clip: SI-SDR +4.6 dB in FP32 and
-54.8 dB through the CPU INT8 graphs. Normalising the level of the input would change the model (its
nonlinearities are not scale-invariant). Running those steps in FP32 does not, and the step graphs make the
switch free: both graphs take the same float state, so any step can run on either.

When a step counts as quiet:
- encoder: the step's input audio, before it runs;
- decoder: its INT8 output. The decoder's input is a latent with no level to read, so a quiet INT8 step is run
  again in FP32 from the same state. Quiet steps are rare in most material, so the extra cost is small.

A step is quiet when its RMS is below the floor, `DEFAULT_FLOOR_DBFS` (-45 dBFS) unless set otherwise. At that
floor the -60 dBFS clip comes back to the FP32 result; in the measurements the floor moved no other clip of the
dev set. The fallback session is CPU FP32, whatever EP runs the INT8 graph. The NPU's XINT8 encoder has the same
weakness, so it gets the same guard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_FLOOR_DBFS = -45.0

# (input, state, bounds) -> (output, next state), as apucodec.runtime.steps.StepFunction
StepCall = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is -3 dBFS); -inf for digital silence."""
    power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
    return 10 * math.log10(power) if power > 0 else -math.inf


@dataclass
class FloorCounts:
    """How many steps ran where: shown in the run report, so a user sees the guard at work."""

    int8: int = 0
    fp32: int = 0

    def describe(self, floor_dbfs: float) -> str:
        total = self.int8 + self.fp32
        return f"{self.fp32} of {total} steps below {floor_dbfs:g} dBFS ran on the FP32 graph"


def guarded_step(stage: str, step_frames: int, int8_step: StepCall, fp32_step: Callable[[], StepCall],
                 floor_dbfs: float, counts: FloorCounts) -> StepCall:
    """`int8_step`, except quiet steps go to `fp32_step()` (a factory, so the FP32 session opens only when needed).

    `stage` says how quiet is judged: "encoder" looks at the input audio, "decoder" at the INT8 output. Only the
    frames that carry signal count (`bounds[1]`, frames left from the step's start): a padded last step is judged
    on its real part, and flush steps (no input left, only the lookahead coming out) follow the step before.
    """
    if stage not in ("encoder", "decoder"):
        raise ValueError(f"unknown stage {stage!r}")
    quiet_before = False

    def step(x: np.ndarray, state: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal quiet_before
        left = float(bounds[1])
        result = None
        if left <= 0:
            quiet = quiet_before
        elif stage == "encoder":
            real = x.shape[-1] * min(left, step_frames) / step_frames
            quiet = rms_dbfs(x[..., : int(real)]) < floor_dbfs
        else:
            result = int8_step(x, state, bounds)
            quiet = rms_dbfs(result[0]) < floor_dbfs
        quiet_before = quiet
        if quiet:
            counts.fp32 += 1
            return fp32_step()(x, state, bounds)
        counts.int8 += 1
        return result if result is not None else int8_step(x, state, bounds)

    return step
