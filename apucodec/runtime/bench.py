"""`apucodec bench`: where the time goes, on which processor, and what overlapping the stages buys.

One benchmark is three runs of the same audio through the same sessions (all in memory, so disk and resampling
do not blur the codec's own time):

1. a warm-up of one step of audio, so first-run allocations and kernel selection are not charged to any stage;
2. sequential: every block of audio goes through encoder -> RVQ -> decoder before the next one is read (one thread);
3. pipelined: the lanes overlap, one thread per stage, as `apucodec run` does.

The graph stages run step graphs (a fixed number of frames per call, with state; `step_frames` picks which), so
their latency is reported per *step* — one step-graph call, timed by the Stepper — while the RVQ lane, which has no
steps, is reported per block it handles. From both runs: p50/p95 per call (sequential = the stage alone;
pipelined = the stage while the others compete for the same memory and, on a CPU-only machine, the same cores),
each stage's busy time and its share of the sequential wall time, what each stage alone could sustain, GFLOP/s
while its graph ran (the manifest's per-step count), and overall: wall seconds, real-time factor, throughput, the
pipelining gain (sequential wall / pipelined wall) and the bound pipelining could reach if every stage had its own
processor (the busiest stage's time). Peak RSS is the whole process's.

Torch-free, like the rest of the runtime.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apucodec.runtime.lanes import StageTiming
from apucodec.runtime.pipeline import Codec, RunResult

STAGES = ("encoder", "rvq", "decoder")
GRAPH_STAGES = ("encoder", "decoder")
# The processor each stage is meant for on a Ryzen AI APU (the lanes of the timeline picture).
PROCESSOR_OF = {"encoder": "NPU", "rvq": "CPU", "decoder": "GPU"}


def generated_audio(seconds: float, sample_rate: int) -> np.ndarray:
    """A reproducible clip (tones + chirp + noise bursts + speech-like pulses): no files needed to benchmark."""
    from apucodec.export.signals import mixture  # NumPy only; the export package imports nothing heavy

    n = max(1, int(round(seconds * sample_rate)))
    return mixture(n, sample_rate).astype(np.float32)


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


def peak_rss_bytes() -> int | None:
    """The process's peak resident set so far (None where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def current_rss_bytes() -> int | None:
    """Resident set now (Linux /proc), to tell what the sessions hold from what a run adds."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def run_bench(codec: Codec, audio: np.ndarray, source: str = "generated", model_label: str | None = None,
              notes: list[str] | None = None) -> BenchReport:
    """Warm up, then run `audio` sequentially and pipelined through `codec`; codec-rate mono float32 in."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    step, rate = codec.step_frames("encoder"), codec.sample_rate
    started = time.perf_counter()
    codec.run_array(audio[: step * codec.hop], overlap=False)  # one step of audio (plus its flush steps)
    warmup = time.perf_counter() - started
    rss_before = current_rss_bytes()
    _, sequential = codec.run_array(audio, overlap=False)
    _, pipelined = codec.run_array(audio, overlap=True)
    return BenchReport(source=source, audio_seconds=sequential.audio_seconds,
                       model_label=model_label or codec.model.label, model_id=codec.model.model_id,
                       step_frames=step, step_seconds=step * codec.hop / rate, latency_ms=latency_ms(codec, step),
                       queue_depth=codec.queue_depth, threads=codec.settings.threads,
                       sequential=RunStats.of("sequential", sequential), pipelined=RunStats.of("pipelined", pipelined),
                       warmup_seconds=warmup, peak_rss_bytes=peak_rss_bytes(), rss_before_bytes=rss_before,
                       placement=codec.placement, notes=list(notes or []), gflop_per_step=stage_gflop(codec))


def latency_ms(codec: Codec, step_frames: int) -> float | None:
    """Algorithmic latency (both lookaheads + one step) at `step_frames`, as the manifest records it."""
    latency = (codec.model.manifest.get("streaming") or {}).get("algorithmic_latency") or {}
    ms = (latency.get(str(step_frames)) or {}).get("ms")
    return float(ms) if isinstance(ms, (int, float)) else None


def stage_gflop(codec: Codec) -> dict[str, float]:
    """GFLOP per step of the step graph each graph stage loaded, from the manifest entry of that graph file."""
    by_name = {entry.get("name"): entry for entry in codec.model.files.values()}
    counts: dict[str, float] = {}
    for stage in GRAPH_STAGES:
        try:
            graph_file = codec.placement.stage(stage).graph
        except KeyError:
            continue
        gflop = (by_name.get(graph_file, {}).get("graph") or {}).get("gflop")
        if isinstance(gflop, (int, float)):
            counts[stage] = float(gflop)
    return counts


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f} MB"


def format_report(report: BenchReport) -> str:
    """The plain-text table `apucodec bench` prints."""
    seq, pipe = report.sequential, report.pipelined
    threads = report.threads or "onnxruntime default"
    latency = "" if report.latency_ms is None else f", algorithmic latency {report.latency_ms:.0f} ms"
    lines = [f"bench: {report.audio_seconds:.2f} s of {report.source} audio, model {report.model_label}",
             f"  step graphs of {report.step_frames} frames ({report.step_seconds * 1e3:.0f} ms of audio per step"
             f"{latency}), queue depth {report.queue_depth}, intra-op threads per session: {threads}",
             "",
             f"{'stage':8s} {'runs on':12s} {'calls':>6s} {'seq p50':>8s} {'seq p95':>8s} {'pipe p50':>9s} "
             f"{'pipe p95':>9s} {'busy s':>7s} {'share':>6s} {'alone':>7s} {'GFLOP/s':>8s}",
             f"{'':8s} {'':12s} {'':>6s} {'ms':>8s} {'ms':>8s} {'ms':>9s} {'ms':>9s} {'(seq)':>7s} {'(seq)':>6s} "
             f"{'x rt':>7s} {'(seq)':>8s}"]
    for stage in STAGES:
        s, p = seq.stages[stage], pipe.stages[stage]
        ran_on = _ran_on(report, stage)
        alone = report.audio_seconds / s.busy_seconds if s.busy_seconds else float("inf")
        gflops = report.gflops(stage)
        lines.append(f"{stage:8s} {ran_on:12s} {s.calls:6d} {s.p50_ms:8.1f} {s.p95_ms:8.1f} {p.p50_ms:9.1f} "
                     f"{p.p95_ms:9.1f} {s.busy_seconds:7.3f} {report.share(stage) * 100:5.1f}% {alone:7.2f} "
                     f"{'-' if gflops is None else f'{gflops:.1f}':>8s}")
    bound = report.bottleneck.busy_seconds / report.audio_seconds
    lines += ["calls: step-graph calls for the encoder and decoder (p50/p95 per step), blocks of audio for the rvq",
              "",
              f"{'':22s} {'sequential':>11s} {'pipelined':>10s}",
              f"{'wall s':22s} {seq.wall_seconds:11.3f} {pipe.wall_seconds:10.3f}",
              f"{'real-time factor':22s} {seq.rtf:11.3f} {pipe.rtf:10.3f}",
              f"{'throughput x real time':22s} {seq.speed:11.2f} {pipe.speed:10.2f}",
              f"{'steps per second':22s} {seq.steps_per_second:11.2f} {pipe.steps_per_second:10.2f}",
              "",
              f"pipelining gain: {report.pipelining_gain:.2f}x (sequential wall / pipelined wall); with one processor "
              f"per stage the bound is RTF {bound:.3f} ({report.bottleneck.stage}, the busiest stage)",
              *_work_lines(report),
              f"peak RSS: {_mb(report.peak_rss_bytes)} (process; {_mb(report.rss_before_bytes)} resident after "
              f"opening the sessions and a warm-up of {report.warmup_seconds:.2f} s)"]
    lines += [f"note: {note}" for note in report.notes]
    lines.append(report.placement.format())
    return "\n".join(lines)


def _work_lines(report: BenchReport) -> list[str]:
    clip = report.clip_gflop()
    if clip is None:
        return []
    per_step = ", ".join(f"{stage} {gflop:.2f}" for stage, gflop in report.gflop_per_step.items())
    return [f"work per step (Conv/ConvTranspose multiply-adds, from the manifest): {per_step} GFLOP; this clip "
            f"{clip:.1f} GFLOP in all steps (the padded last step and the flush steps included), "
            f"{clip / report.audio_seconds:.1f} GFLOP per audio second"]


def _ran_on(report: BenchReport, stage: str) -> str:
    from apucodec.runtime.providers import short_ep

    try:
        return short_ep(report.placement.stage(stage).ran_on)
    except KeyError:
        return "?"
