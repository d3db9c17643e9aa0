"""`apucodec stream`: the live path (step graphs at a live step, encoder -> RVQ -> decoder) over a file, paced like a
microphone with --realtime and measured per step, or microphone -> speakers with --live."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from apucodec.cli.codec import engine_options
from apucodec.cli.param_types import file_path, finite_float
from apucodec.errors import ApucodecError


@click.command("stream")
@click.argument("input_path", required=False, type=file_path("input"))
@click.argument("output_path", required=False, type=file_path())
@click.option("--step-frames", type=click.IntRange(min=1), default=4, show_default=True,
              help="Frames per step (512 samples each): the model must have a step graph of this size.")
@click.option("--realtime", is_flag=True, help="Release the input at the audio clock's pace, as a microphone would.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurements as JSON.")
@click.option("--live", is_flag=True, help="Microphone -> speakers through PortAudio (needs apucodec[live]).")
@click.option("--input-device", default=None, help="--live: input device (index or part of its name).")
@click.option("--output-device", default=None, help="--live: output device (index or part of its name).")
@click.option("--seconds", type=finite_float(min=0, min_open=True), default=None,
              help="--live: stop after this long (default: Ctrl-C).")
@engine_options
def stream(input_path: Path | None, output_path: Path | None, step_frames: int, realtime: bool, as_json: bool,
           live: bool, input_device: str | None, output_device: str | None, seconds: float | None,
           **session: object) -> None:
    """Stream IN through the codec at a live step size into OUT, measuring latency per step."""
    from apucodec.runtime.live_audio import pick_devices

    if live:
        devices = pick_devices(input_device, output_device)  # one line on a machine without audio devices
    elif input_path is None or output_path is None:
        raise ApucodecError("stream needs IN and OUT files (or --live for microphone -> speakers)")
    from apucodec.cli.codec import _open_codec

    report = bool(session.pop("report"))
    codec = _open_codec(**session, stages=("encoder", "decoder"), step_frames=step_frames)
    s = codec.stream(step_frames=step_frames)
    step_samples = step_frames * codec.hop
    if live:
        from apucodec.runtime.live_audio import run_live

        underruns = run_live(s, codec.sample_rate, step_samples, *devices, seconds)
        click.echo(f"live: algorithmic latency {codec.algorithmic_latency(step_frames) * 1000:.1f} ms; "
                   f"{underruns} output underruns")
        return
    _stream_file(codec, s, input_path, output_path, step_frames, realtime, as_json, report)


def _stream_file(codec: object, s: object, input_path: Path, output_path: Path, step_frames: int, realtime: bool,
                 as_json: bool, report: bool) -> None:
    """Through the same input (`-`, FIFOs read once) and output path (apucodec.io.outputs) as run/encode/decode."""
    from apucodec.cli.codec import check_output
    from apucodec.io.audio_read import read_audio
    from apucodec.io.audio_write import open_audio_output
    from apucodec.io.outputs import is_stdio
    from apucodec.io.stdio import stdin_input
    from apucodec.runtime.realtime import StreamStats, drive

    with stdin_input(input_path) as (source, _label):
        audio, info = read_audio(source, codec.sample_rate)
        check_output(output_path, info.path)
    stats = StreamStats(step_frames, step_frames * codec.hop / codec.sample_rate,
                        codec.algorithmic_latency(step_frames), realtime)
    with open_audio_output(output_path, codec.sample_rate) as fh:
        drive(s, audio, codec.sample_rate, step_frames * codec.hop, stats, lambda x: fh.write(np.clip(x, -1, 1)),
              realtime)
    to_stderr = is_stdio(output_path)  # the audio owns stdout; the measurements go beside it
    if as_json:
        click.echo(json.dumps({**stats.to_dict(), "model_id": codec.model.model_id,
                               "placement": codec.placement.to_dict()}, indent=2), err=to_stderr)
    else:
        click.echo(stats.summary() + f"; {codec.placement.summary()}, model {codec.model.label}", err=to_stderr)
        if report:
            click.echo(codec.placement.format(), err=to_stderr)
