"""Step-graph naming and timing shared by export, calibration and the runtime (torch-free).

A stage ("encoder" or "decoder") has one or more step graphs: the same network at different step sizes (a live
one of a few frames, an offline one of ~128) and precisions (fp32, cpu-int8, npu-int8). All graphs of a stage share
one state layout, so a stream can move between them. The stage's delay (lookahead) is what a reader needs to
compute the algorithmic latency: encoder delay + decoder delay + one step. The manifest records each graph's facts
in its FileEntry and each stage's in StageStreaming (apucodec/contract/manifest.py).
"""

from __future__ import annotations

STAGES = ("encoder", "decoder")
PRECISIONS = ("fp32", "cpu-int8", "npu-int8")
STEP_INPUTS = {"encoder": ("audio", "state", "bounds"), "decoder": ("latent", "state", "bounds")}
STEP_OUTPUTS = {"encoder": ("latent", "next_state"), "decoder": ("audio", "next_state")}
# The "step size" of a whole-sequence graph (a pooled-norm model's offline graphs, a dynamic time axis, no state):
# the runtime picks graphs by (stage, step frames, precision), and this one takes the whole input at once.
WHOLE_SEQUENCE = 0


def frames_for_length(length: int, hop: int) -> int:
    """Frames that cover `length` samples (the last one zero-padded)."""
    return -(-length // hop)


def step_role(stage: str, step_frames: int, precision: str = "fp32") -> str:
    """The manifest role (and file stem) of a step graph: encoder.s4, decoder.s64, encoder.s64.npu-int8; a
    whole-sequence graph's: encoder.whole, encoder.whole.cpu-int8."""
    base = f"{stage}.whole" if step_frames == WHOLE_SEQUENCE else f"{stage}.s{step_frames}"
    return base if precision == "fp32" else f"{base}.{precision}"


def algorithmic_latency(encoder_delay: int, decoder_delay: int, step_frames: int, hop: int) -> int:
    """Samples from the moment a sample enters until it can leave: both lookaheads plus one step of buffering."""
    return encoder_delay + decoder_delay + step_frames * hop

