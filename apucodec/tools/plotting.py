"""The timeline picture of `apucodec bench --plot`: one lane per processor, one bar per step.

The point of the split design is that the NPU, CPU and GPU work on different steps at the same time; a picture
with the encoder, RVQ and decoder lanes stacked over a shared time axis shows at a glance whether they do (bars
overlap in time) or not (a staircase). The sequential run is drawn below on the same scale for comparison.
matplotlib is optional (the `plot` extra) and imported only here, headless (Agg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError, require
from apucodec.io.audio_write import atomic_output
from apucodec.io.outputs import check_output_path, extension
from apucodec.tools.bench_report import GRAPH_STAGES, PROCESSOR_OF, STAGES, BenchReport, RunStats

# colour per stage; alternate bars are drawn lighter so neighbours stay distinguishable
STAGE_COLOURS = {"encoder": ("#1f6fb4", "#7fb0dc"), "rvq": ("#d9822b", "#f0bd8a"), "decoder": ("#2e9a4a", "#8fd19f")}


def lane_label(report: BenchReport, stage: str) -> str:
    """'NPU lane: encoder' plus where it actually ran, e.g. 'ran on CPU (fallback)'."""
    from apucodec.runtime.eps import short_ep

    try:
        placement = report.placement.stage(stage)
    except KeyError:
        return f"{PROCESSOR_OF[stage]}: {stage}"
    ran = short_ep(placement.ran_on)
    suffix = " (fallback)" if placement.fell_back else ""
    return f"{PROCESSOR_OF[stage]}: {stage}\nran on {ran}{suffix}"


def _draw_run(ax: Any, report: BenchReport, run: RunStats, x_max: float) -> None:
    rows = list(reversed(STAGES))  # encoder on top
    for row, stage in enumerate(rows):
        # graph stages: one bar per step-graph call; the RVQ lane: one bar per block it handled
        bars = [t for t in (run.step_timings if stage in GRAPH_STAGES else run.timings) if t.stage == stage]
        for t in bars:
            colour = STAGE_COLOURS[stage][t.index % 2]
            ax.broken_barh([(t.start, t.seconds)], (row - 0.38, 0.76), facecolors=colour, edgecolor="black",
                           linewidth=0.4)
            if t.seconds > x_max * 0.025:  # label bars wide enough to hold a number
                ax.text(t.start + t.seconds / 2, row, str(t.index), ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [lane_label(report, s) for s in rows], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, x_max)
    ax.grid(axis="x", linestyle=":", linewidth=0.5)
    ax.set_title(f"{run.mode}: {run.wall_seconds:.2f} s wall for {run.audio_seconds:.2f} s of audio "
                 f"(RTF {run.rtf:.3f})", fontsize=9, loc="left")


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")  # no display needed; must precede pyplot's import
    import matplotlib.pyplot as plt

    return plt


def check_plot_path(path: str | Path) -> str:
    """The image format for `path`, or a one-line error — before a benchmark spends a minute, not after."""
    plt = _pyplot()
    path = Path(path)
    fmt = extension(path).lstrip(".") or "png"
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if fmt not in supported:
        raise ApucodecError(f"{path}: cannot write a .{fmt} picture; use one of "
                            f"{', '.join('.' + f for f in sorted(supported))}")
    check_output_path(path, expected="a picture file path")
    return fmt


def plot_timeline(report: BenchReport, path: str | Path) -> Path:
    """Write the pipelined and sequential timelines (same time scale) to `path` (format from its suffix)."""
    fmt = check_plot_path(path)
    plt = _pyplot()
    path = Path(path)
    x_max = max(report.sequential.wall_seconds, report.pipelined.wall_seconds) * 1.02
    fig, axes = plt.subplots(2, 1, figsize=(12, 5.2), sharex=True, constrained_layout=True)
    _draw_run(axes[0], report, report.pipelined, x_max)
    _draw_run(axes[1], report, report.sequential, x_max)
    axes[1].set_xlabel("seconds since the run started (encoder, decoder: one bar per step; rvq: one per block)")
    fig.suptitle(f"apucodec bench: {report.model_label}; {report.sequential.steps} steps of {report.step_frames} "
                 f"frames ({report.step_seconds:.2f} s); pipelining gain {report.pipelining_gain:.2f}x", fontsize=10)
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120)
    finally:
        plt.close(fig)
    return path
