"""What one run did (`RunResult`: timings per stage, step and block, placement) and the checks and notes about its
input and output that every entry point shares."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError
from apucodec.io.audio_read import AudioInfo
from apucodec.runtime.lanes import StageTiming
from apucodec.runtime.placement import PlacementReport


@dataclass
class RunResult:
    """What one run did and how long each part took (the raw material of `bench`)."""

    kind: str                   # "run" | "encode" | "decode"
    samples: int                # length at the codec rate (= output length unless resampled back)
    sample_rate: int
    frames: int
    steps: int                  # step-graph calls of the busiest graph stage
    n_codebooks: int
    bitrate: float              # bits per second of the code stream
    wall_seconds: float
    timings: list[StageTiming]
    placement: PlacementReport
    model_id: str
    queue_depth: int
    notes: list[str] = field(default_factory=list)  # e.g. "2 channels downmixed to mono"
    # One per step-graph call (encoder, decoder), on the same clock as `timings`: a lane's item can hold several
    # steps or none, so per-step latency comes from here.
    step_timings: list[StageTiming] = field(default_factory=list)

    def steps_of(self, stage: str) -> int:
        """Step-graph calls `stage` made in this run."""
        return sum(1 for t in self.step_timings if t.stage == stage)

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def rtf(self) -> float:
        """Real-time factor: wall seconds per audio second (below 1 is faster than real time)."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else float("inf")

    def stage_seconds(self) -> dict[str, float]:
        """Busy seconds per stage (summed over blocks)."""
        totals: dict[str, float] = {}
        for t in self.timings:
            totals[t.stage] = totals.get(t.stage, 0.0) + t.seconds
        return totals

    def summary(self, model_label: str | None = None) -> str:
        model = f", model {model_label}" if model_label else f", model {self.model_id}"
        return (f"{self.kind}: {self.audio_seconds:.2f} s of audio in {self.wall_seconds:.2f} s (RTF {self.rtf:.3f}, "
                f"{1 / self.rtf if self.rtf else float('inf'):.1f}x real time), {self.bitrate / 1000:.2f} kbps "
                f"({self.n_codebooks} codebooks); {self.placement.summary()}{model}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "samples": self.samples, "sample_rate": self.sample_rate, "frames": self.frames,
                "steps": self.steps, "n_codebooks": self.n_codebooks, "bitrate": self.bitrate,
                "wall_seconds": self.wall_seconds, "audio_seconds": self.audio_seconds, "rtf": self.rtf,
                "model_id": self.model_id, "queue_depth": self.queue_depth, "placement": self.placement.to_dict(),
                "timings": [t.__dict__ for t in self.timings],
                "step_timings": [t.__dict__ for t in self.step_timings], "notes": list(self.notes)}


def input_notes(info: AudioInfo, rate: int) -> list[str]:
    """What happens to an input before the codec hears it (downmix, resampling), so the user is told."""
    notes = []
    if info.channels > 1:
        notes.append(f"{info.path}: {info.channels} channels downmixed to mono")
    if info.sample_rate != rate:
        notes.append(f"{info.path}: resampled from {info.sample_rate} Hz to {rate} Hz")
    return notes


def check_distinct(input_path: Path, output_path: Path) -> None:
    """Refuse to overwrite the input with the output."""
    same = False
    if output_path.exists():
        try:
            same = os.path.samefile(input_path, output_path)
        except OSError:
            same = False
    if same or input_path.resolve() == output_path.resolve():
        raise ApucodecError(f"{output_path}: output is the input file; choose another output path")
