"""Step-graph facts as the manifest records them, read by attribute (torch-free).

A stage ("encoder" or "decoder") has one or more step graphs: the same network at different step sizes (a live
one of a few frames, an offline one of ~128) and precisions (fp32, cpu-int8, npu-int8). All graphs of a stage share
one state layout, so a stream can move between them. The stage's delay (lookahead) is what a reader needs to
compute the algorithmic latency: encoder delay + decoder delay + one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STAGES = ("encoder", "decoder")
PRECISIONS = ("fp32", "cpu-int8", "npu-int8")
STEP_INPUTS = {"encoder": ("audio", "state", "bounds"), "decoder": ("latent", "state", "bounds")}
STEP_OUTPUTS = {"encoder": ("latent", "next_state"), "decoder": ("audio", "next_state")}


def step_role(stage: str, step_frames: int, precision: str = "fp32") -> str:
    """The manifest role (and file stem) of a step graph: encoder.s4, decoder.s64, encoder.s64.npu-int8."""
    base = f"{stage}.s{step_frames}"
    return base if precision == "fp32" else f"{base}.{precision}"


@dataclass(frozen=True)
class StepGraphEntry:
    """One step graph file, as `files[role]` describes it."""

    role: str
    name: str
    stage: str
    step_frames: int
    precision: str
    state_size: int
    horizon_frames: int

    @classmethod
    def from_entry(cls, role: str, entry: dict[str, Any]) -> StepGraphEntry:
        return cls(role=role, name=str(entry["name"]), stage=str(entry["stage"]),
                   step_frames=int(entry["step_frames"]), precision=str(entry.get("precision", "fp32")),
                   state_size=int(entry["state_size"]), horizon_frames=int(entry["horizon_frames"]))


@dataclass(frozen=True)
class StageStreaming:
    """A stage's timing: its output delay at the codec rate, and its state size (same for all its graphs)."""

    stage: str
    delay_samples: int
    state_size: int

    @classmethod
    def from_dict(cls, stage: str, data: dict[str, Any]) -> StageStreaming:
        return cls(stage, int(data["delay_samples"]), int(data["state_size"]))


def algorithmic_latency(encoder_delay: int, decoder_delay: int, step_frames: int, hop: int) -> int:
    """Samples from the moment a sample enters until it can leave: both lookaheads plus one step of buffering."""
    return encoder_delay + decoder_delay + step_frames * hop


def streaming_section(hop: int, sample_rate: int, stages: dict[str, dict[str, int]],
                      step_frames: list[int]) -> dict[str, Any]:
    """The manifest's `streaming` section: per stage delay and state size, and the latency per step size."""
    enc, dec = stages["encoder"]["delay_samples"], stages["decoder"]["delay_samples"]
    latency = {}
    for s in step_frames:
        samples = algorithmic_latency(enc, dec, s, hop)
        latency[str(s)] = {"samples": samples, "ms": round(1000 * samples / sample_rate, 2)}
    return {"hop": hop, "step_frames": sorted(step_frames),
            **{stage: {**facts, "delay_frames": round(facts["delay_samples"] / hop, 3),
                       "delay_ms": round(1000 * facts["delay_samples"] / sample_rate, 2)}
               for stage, facts in stages.items()},
            "algorithmic_latency": latency}
