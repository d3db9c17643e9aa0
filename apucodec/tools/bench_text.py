"""The plain-text table `apucodec bench` prints: per-stage latency and busy time, both runs side by side."""

from __future__ import annotations

from apucodec.tools.bench_report import STAGES, BenchReport


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
    from apucodec.runtime.eps import short_ep

    try:
        return short_ep(report.placement.stage(stage).ran_on)
    except KeyError:
        return "?"
