"""Quiet steps run on the FP32 step graph: an INT8 graph is accurate only over the levels it was calibrated on.

Why: static INT8 activations cover a fixed range per tensor, set by the calibration audio's peaks; uint8 spans
about 48 dB below them. Audio far quieter than the calibration material falls under the lowest step in the early
layers and comes out as noise. Measured on the bundled model, a -60 dBFS clip: SI-SDR +4.25 dB in FP32, -53.8 dB
through the CPU INT8 graphs, -38.2 dB through the NPU's XINT8 encoder; with this floor, +4.25 dB for all of them.
Normalising the level of the input would change the model (its nonlinearities are not scale-invariant). Running
those steps in FP32 does not, and the step graphs make the switch free: both graphs take the same float state, so
any step can run on either.

When a step counts as quiet:
- encoder: the step's input audio, before it runs;
- decoder: its output. The decoder's input is a latent with no level to read, so a quiet INT8 step is run again
  in FP32 from the same state, and the steps after it go straight to FP32 (judged on their FP32 output) until
  the level comes back. Quiet stretches therefore cost FP32, not INT8 plus FP32.

A step is quiet when its RMS is below the floor: `DEFAULT_FLOOR_DBFS` (-45 dBFS) for the encoder's input, 15 dB
above that for the decoder's output (`DECODER_MARGIN_DB` says why). The fallback session is CPU FP32, whatever EP
runs the INT8 graph. The NPU's INT8 encoder has the same weakness, so it gets the same guard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_FLOOR_DBFS = -45.0
# The decoder judges its INT8 output, which carries INT8's own error: about -40 dBFS absolute on the bundled model
# (its INT8 vs FP32 output SNR is 18.7 dB on material at about -21 dBFS). A step is trusted to INT8 only well above
# that, at floor + 15 dB (-30 dBFS by default): on the dev set 11 of 105 offline steps fall below, 7 of them in
# the -60 dBFS clip and most others at the end of a file.
DECODER_MARGIN_DB = 15.0

# (input, state, bounds) -> (output, next state), as apucodec.runtime.stepper.StepFunction
StepCall = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def stage_floor(stage: str, floor_dbfs: float) -> float:
    """The level a stage's steps are judged against: the floor for the encoder's input, higher for the decoder."""
    return floor_dbfs + DECODER_MARGIN_DB if stage == "decoder" else floor_dbfs


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is -3 dBFS); -inf for digital silence."""
    power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
    return 10 * math.log10(power) if power > 0 else -math.inf


FLOOR_NOTE_END = "ran on the FP32 graph"


def is_floor_note(note: str) -> bool:
    """Is this run note the INT8 floor's step count? The floor is routine on ordinary input (quiet intros and
    pauses), so the CLI shows the count with --report and in JSON, not as a note on every run."""
    return note.endswith(FLOOR_NOTE_END)


@dataclass
class FloorCounts:
    """How many steps ran where: shown in the run report, so a user sees the guard at work."""

    int8: int = 0
    fp32: int = 0

    def describe(self, floor_dbfs: float) -> str:
        total = self.int8 + self.fp32
        return f"{self.fp32} of {total} steps below {floor_dbfs:g} dBFS {FLOOR_NOTE_END}"


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
    decoder_floor = stage_floor("decoder", floor_dbfs)

    def step(x: np.ndarray, state: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal quiet_before
        left = float(bounds[1])
        if stage == "encoder":
            if left <= 0:
                quiet = quiet_before
            else:
                real = x.shape[-1] * min(left, step_frames) / step_frames
                quiet = rms_dbfs(x[..., : int(real)]) < floor_dbfs
            quiet_before = quiet
            counts.fp32 += quiet
            counts.int8 += not quiet
            return fp32_step()(x, state, bounds) if quiet else int8_step(x, state, bounds)
        # decoder: after a quiet step go straight to FP32 and judge the true level; else INT8 first
        if quiet_before:
            result = fp32_step()(x, state, bounds)
            counts.fp32 += 1
            quiet_before = left <= 0 or rms_dbfs(result[0]) < decoder_floor
            return result
        result = int8_step(x, state, bounds)
        if left > 0 and rms_dbfs(result[0]) < decoder_floor:
            quiet_before = True
            counts.fp32 += 1
            return fp32_step()(x, state, bounds)
        counts.int8 += 1
        return result

    return step
