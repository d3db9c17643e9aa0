"""`apucodec bench`: per-step latency per stage, real-time factor sequential vs pipelined, peak RSS, placement,
timeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from apucodec.cli.codec import _open_codec, engine_options
from apucodec.cli.param_types import file_path, finite_float
from apucodec.errors import ApucodecError

DEFAULT_SECONDS = 10.0
MAX_SECONDS = 3600.0  # generated audio is held in memory: an hour is 635 MB of float32 samples


@click.command()
@click.option("--seconds", type=finite_float(min=0, max=MAX_SECONDS, min_open=True), default=None,
              help=f"Audio length: generated audio of this length (default {DEFAULT_SECONDS:g} s), or the first "
                   "SECONDS of --input.")
@click.option("--input", "input_path", type=file_path("input"), default=None,
              help="Benchmark on this audio file (any format libsndfile reads) instead of generated audio.")
@click.option("--step-frames", type=click.IntRange(min=1), default=None,
              help="Which step graphs to run, by frames per step (default: the model's largest, its offline step; "
                   "a small live step trades throughput for latency).")
@click.option("--queue-depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="Items each queue between two stages can hold.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (per-item and per-step timings).")
@click.option("--plot", "plot_path", type=file_path(), default=None,
              help="Write a timeline picture (one lane per processor, one bar per step); needs apucodec[plot].")
@engine_options
def bench(seconds: float | None, input_path: Path | None, step_frames: int | None, queue_depth: int, as_json: bool,
          plot_path: Path | None, **opts: Any) -> None:
    """Time the codec per stage and step, sequentially and pipelined, and show where each stage ran."""
    from apucodec.io.resample import resample
    from apucodec.runtime.codec_runner import input_notes
    from apucodec.tools.bench import generated_audio, run_bench
    from apucodec.tools.bench_text import format_report

    if plot_path is not None:
        from apucodec.tools.plotting import check_plot_path

        check_plot_path(plot_path)  # a missing matplotlib or a bad path fails now, not after the benchmark
    audio, rate, source, info = _input_audio(input_path, seconds)  # read before the (slow) sessions are opened
    # bench measures the engine itself (its lanes, steps and queue), not the public Codec's surface
    codec = _open_codec(**opts, stages=("encoder", "decoder"), step_frames=step_frames)._engine
    codec.queue_depth = queue_depth
    if audio is None:
        audio = generated_audio(seconds or DEFAULT_SECONDS, codec.sample_rate)
    else:  # one conversion, from the file's rate straight to the model's
        audio = resample(audio, rate, codec.sample_rate)
    notes = [] if info is None else input_notes(info, codec.sample_rate)
    report = run_bench(codec, audio, source=source, model_label=codec.model.label, notes=notes)
    if plot_path is not None:
        from apucodec.tools.plotting import plot_timeline

        plot_timeline(report, plot_path)
        report.notes.append(f"timeline written to {plot_path}")
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))


# the placement report is always part of bench's output, so run's --report flag has no job here
bench.params = [param for param in bench.params if param.name != "report"]


def _input_audio(input_path: Path | None, seconds: float | None) -> tuple[Any, int, str, Any]:
    """(mono samples at the file's own rate, or None for generated audio; that rate; source label; the file's
    AudioInfo, or None). The model's rate is known only once it is open: resampling waits until then."""
    if input_path is None:
        return None, 0, "generated", None
    from apucodec.io.audio_read import read_audio

    audio, info = read_audio(input_path, None)
    if seconds is not None:
        audio = audio[: int(round(seconds * info.sample_rate))]
    if audio.size == 0:
        raise ApucodecError(f"{input_path}: contains no audio samples")
    return audio, info.sample_rate, str(input_path), info
