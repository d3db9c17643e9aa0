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

Torch-free, like the runtime it measures. The figures are apucodec.tools.bench_report's, the table
apucodec.tools.bench_text's.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from apucodec.dsp.signals import mixture
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.tools.bench_report import GRAPH_STAGES, BenchReport, RunStats


def generated_audio(seconds: float, sample_rate: int) -> np.ndarray:
    """A reproducible clip (tones + chirp + noise bursts + speech-like pulses): no files needed to benchmark."""
    n = max(1, int(round(seconds * sample_rate)))
    return mixture(n, sample_rate).astype(np.float32)


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


def run_bench(codec: CodecEngine, audio: np.ndarray, source: str = "generated", model_label: str | None = None,
              notes: list[str] | None = None) -> BenchReport:
    """Warm up, then run `audio` sequentially and pipelined through `codec`; codec-rate mono float32 in."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    step, rate = codec.step_frames("encoder"), codec.sample_rate
    started = time.perf_counter()
    # one step of audio (plus its flush steps); a whole-sequence model (step 0) warms up on 4 frames
    codec.run_array(audio[: max(step, 4) * codec.hop], overlap=False)
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
                       placement=codec.placement, notes=[*(notes or []), *pipelined.notes],
                       gflop_per_step=stage_gflop(codec))


def latency_ms(codec: CodecEngine, step_frames: int) -> float | None:
    """Algorithmic latency (both lookaheads + one step) at `step_frames`, as the manifest records it."""
    latency = codec.model.manifest.streaming.algorithmic_latency or {}
    ms = (latency.get(str(step_frames)) or {}).get("ms")
    return float(ms) if isinstance(ms, (int, float)) else None


def stage_gflop(codec: CodecEngine) -> dict[str, float]:
    """GFLOP per step of the step graph each graph stage loaded, from the manifest entry its session carries."""
    counts: dict[str, float] = {}
    for stage in GRAPH_STAGES:
        session = codec.sessions.get(stage)
        if session is None:
            continue
        entry = session.record
        gflop = entry.graph.gflop if entry.graph is not None else None
        if isinstance(gflop, (int, float)):
            counts[stage] = float(gflop)
    return counts
