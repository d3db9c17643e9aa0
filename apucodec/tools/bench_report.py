"""What one `apucodec bench` measured, as data: per-stage statistics per run, and the report over both runs.

Kept apart from the measuring (tools/bench.py) and the table (tools/bench_text.py) so the JSON output, the text and
the timeline picture all read the same derived figures (real-time factor, pipelining gain, bottleneck, GFLOP/s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apucodec.runtime.lanes import StageTiming
from apucodec.runtime.run_result import RunResult

STAGES = ("encoder", "rvq", "decoder")
GRAPH_STAGES = ("encoder", "decoder")
# The processor each stage is meant for on a Ryzen AI APU (the lanes of the timeline picture).
PROCESSOR_OF = {"encoder": "NPU", "rvq": "CPU", "decoder": "GPU"}


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q)) if values else float("nan")



@dataclass
class StageStats:
    """One stage over one run: latency per call (a step-graph call, or an RVQ block) and busy time.

    `busy_seconds` is the stage's lane time (its step calls plus buffering and hand-over); `graph_seconds` is the
    time inside step-graph calls only (None for the RVQ lane), what the GFLOP/s figure is measured against.
    """

    stage: str
    calls: int
    p50_ms: float
    p95_ms: float
    busy_seconds: float
    graph_seconds: float | None

    @classmethod
    def of(cls, stage: str, result: RunResult) -> StageStats:
        busy = float(sum(t.seconds for t in result.timings if t.stage == stage))
        if stage in GRAPH_STAGES:
            seconds = [t.seconds for t in result.step_timings if t.stage == stage]
            graph: float | None = float(sum(seconds))
        else:
            seconds, graph = [t.seconds for t in result.timings if t.stage == stage], None
        return cls(stage, len(seconds), percentile_ms(seconds, 50), percentile_ms(seconds, 95), busy, graph)


@dataclass
class RunStats:
    """One run (sequential or pipelined): wall time and per-stage statistics."""

    mode: str
    wall_seconds: float
    audio_seconds: float
    steps: int                  # step-graph calls of the busiest graph stage
    stages: dict[str, StageStats]
    timings: list[StageTiming] = field(repr=False)
    step_timings: list[StageTiming] = field(repr=False)

    @classmethod
    def of(cls, mode: str, result: RunResult) -> RunStats:
        return cls(mode, result.wall_seconds, result.audio_seconds, result.steps,
                   {s: StageStats.of(s, result) for s in STAGES}, list(result.timings), list(result.step_timings))

    @property
    def rtf(self) -> float:
        return self.wall_seconds / self.audio_seconds

    @property
    def speed(self) -> float:
        """Throughput in audio seconds per wall second ("x real time")."""
        return self.audio_seconds / self.wall_seconds

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.wall_seconds

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "wall_seconds": self.wall_seconds, "rtf": self.rtf, "x_real_time": self.speed,
                "steps": self.steps, "steps_per_second": self.steps_per_second,
                "stages": {name: vars(stats) for name, stats in self.stages.items()},
                "timings": [vars(t) for t in self.timings], "step_timings": [vars(t) for t in self.step_timings]}


@dataclass
class BenchReport:
    source: str                 # "generated" or the input file's path
    audio_seconds: float
    model_label: str
    model_id: str
    step_frames: int            # frames per step-graph call (both graph stages)
    step_seconds: float         # audio one step covers
    latency_ms: float | None    # the manifest's algorithmic latency at this step size
    queue_depth: int
    threads: int
    sequential: RunStats
    pipelined: RunStats
    warmup_seconds: float
    peak_rss_bytes: int | None
    rss_before_bytes: int | None
    placement: Any              # PlacementReport
    notes: list[str] = field(default_factory=list)
    # GFLOP one step of each graph stage costs (the manifest's count of the step graph that ran; missing for a
    # graph whose count could not be made): with the graph time it says how close a stage runs to its processor.
    gflop_per_step: dict[str, float] = field(default_factory=dict)

    @property
    def pipelining_gain(self) -> float:
        return self.sequential.wall_seconds / self.pipelined.wall_seconds

    @property
    def bottleneck(self) -> StageStats:
        """The busiest stage (sequential run): with one processor per stage, pipelining cannot beat its time."""
        return max(self.sequential.stages.values(), key=lambda s: s.busy_seconds)

    def share(self, stage: str) -> float:
        """The stage's busy time as a fraction of the sequential run's wall time."""
        return self.sequential.stages[stage].busy_seconds / self.sequential.wall_seconds

    def gflops(self, stage: str) -> float | None:
        """GFLOP/s the stage's step graph reached while it ran (sequential run), or None without a FLOP count."""
        stats = self.sequential.stages[stage]
        if stage not in self.gflop_per_step or not stats.graph_seconds:
            return None
        return self.gflop_per_step[stage] * stats.calls / stats.graph_seconds

    def clip_gflop(self) -> float | None:
        """The work the graph stages did on this clip (every step, padded last step and flush steps included)."""
        if not self.gflop_per_step:
            return None
        return sum(g * self.sequential.stages[s].calls for s, g in self.gflop_per_step.items())

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "audio_seconds": self.audio_seconds, "model": self.model_label,
                "model_id": self.model_id, "step_frames": self.step_frames, "step_seconds": self.step_seconds,
                "algorithmic_latency_ms": self.latency_ms, "steps": self.sequential.steps,
                "queue_depth": self.queue_depth, "threads": self.threads, "warmup_seconds": self.warmup_seconds,
                "sequential": self.sequential.to_dict(), "pipelined": self.pipelined.to_dict(),
                "pipelining_gain": self.pipelining_gain,
                "bottleneck": {"stage": self.bottleneck.stage,
                               "rtf_bound": self.bottleneck.busy_seconds / self.audio_seconds},
                "share_of_sequential": {s: self.share(s) for s in STAGES},
                "gflop_per_step": dict(self.gflop_per_step), "clip_gflop": self.clip_gflop(),
                "gflops_sequential": {s: self.gflops(s) for s in self.gflop_per_step},
                "peak_rss_bytes": self.peak_rss_bytes, "rss_before_bytes": self.rss_before_bytes,
                "placement": self.placement.to_dict(), "notes": list(self.notes)}
