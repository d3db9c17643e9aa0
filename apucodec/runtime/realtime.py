"""Driving a live ChannelStream as a microphone would, and measuring what a listener would feel.

With `paced=True` step k's input is released when its last sample would have arrived from a microphone
(t0 + (k+1) * step / rate); without it, as fast as possible (same output, compute times only: input that is all
there at once arrives before its time, so a latency measured against it would be negative, and a deadline would
mean nothing). Per step:

- compute: seconds `stream.process` took;
- latency: from the arrival of the oldest input sample in the step's output to the moment that output was ready.
  With no compute time this is the algorithmic latency (encoder lookahead + decoder lookahead + one step);
- deadline miss: the output came later than one step period after the step's input completed, i.e. after the
  previous step's output would have finished playing: the speaker would have run dry (the usual real-time rule:
  each block must be processed within one block period).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apucodec.runtime.channel_stream import ChannelStream


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    a = np.asarray(values, dtype=np.float64) * 1000
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


@dataclass
class StreamStats:
    step_frames: int
    step_seconds: float
    algorithmic_latency: float
    paced: bool
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    compute: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    misses: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"step_frames": self.step_frames, "step_ms": round(self.step_seconds * 1000, 3),
                "algorithmic_latency_ms": round(self.algorithmic_latency * 1000, 3), "realtime": self.paced,
                "steps": len(self.compute), "audio_seconds": self.audio_seconds, "wall_seconds": self.wall_seconds,
                "rtf": self.wall_seconds / self.audio_seconds if self.audio_seconds else None,
                "compute_ms": percentiles(self.compute),
                "latency_ms": percentiles(self.latency) if self.paced else None,
                "deadline_misses": self.misses if self.paced else None}

    def summary(self) -> str:
        c, lat = percentiles(self.compute), percentiles(self.latency)
        head = (f"{self.audio_seconds:.2f} s in {len(self.compute)} steps of {self.step_frames} frames "
                f"({self.step_seconds * 1000:.1f} ms); algorithmic latency {self.algorithmic_latency * 1000:.1f} ms; "
                f"compute per step p50/p95/p99/max {c['p50']:.1f}/{c['p95']:.1f}/{c['p99']:.1f}/{c['max']:.1f} ms")
        if not self.paced:
            rtf = self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0
            return (f"stream (as fast as possible): {head}; RTF {rtf:.3f} (end-to-end latency and deadlines: "
                    "--realtime)")
        return (f"stream (real time): {head}; end-to-end latency p50/p95/p99/max {lat['p50']:.1f}/"
                f"{lat['p95']:.1f}/{lat['p99']:.1f}/{lat['max']:.1f} ms; deadline misses {self.misses}")


def drive(stream: ChannelStream, audio: np.ndarray, rate: int, step_samples: int, stats: StreamStats,
          write: Callable[[np.ndarray], None], paced: bool) -> None:
    """Feed `audio` (mono, codec rate) step by step, write every ready output, flush, and fill `stats`."""
    emitted = 0
    t0 = time.perf_counter()
    for start in range(0, audio.size, step_samples):
        end = min(start + step_samples, audio.size)
        arrived = t0 + end / rate
        if paced:
            wait = arrived - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        begin = time.perf_counter()
        out = stream.process(audio[start:end])
        ready = time.perf_counter()
        stats.compute.append(ready - begin)
        if out.size:
            if paced:
                oldest = t0 + (emitted + 1) / rate  # when the oldest sample of this output arrived
                stats.latency.append(ready - oldest)
            emitted += out.size
            write(out)
        if paced and ready > arrived + step_samples / rate:
            stats.misses += 1
    tail = stream.flush().audio
    if tail.size:
        write(tail)
    stats.wall_seconds = time.perf_counter() - t0
    stats.audio_seconds = audio.size / rate
