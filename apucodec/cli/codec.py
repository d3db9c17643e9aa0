"""`apucodec run`, `encode`, `decode`: the codec on files, through apucodec.runtime (never torch).

All three share the session options (model, EP order per stage, INT8/FP32 encoder, strict, threads, EP options)
and the same output: a progress bar on stderr for inputs over a few seconds, notes (downmix, resampling) and
fallback warnings on stderr, and one summary line on stdout — audio seconds, wall seconds, real-time factor,
bitrate, where each stage ran and which model — followed by the placement report with --report.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from apucodec.cli.stage_options import settings_overrides, stage_options
from apucodec.errors import ApucodecError

PROGRESS_MIN_SECONDS = 5.0


def _parse_ep_options(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """--ep-option EP:KEY=VALUE (repeatable), e.g. vitisai:target=X2, webgpu:preferredLayout=NHWC."""
    from apucodec.runtime.providers import resolve_ep_name

    options: dict[str, dict[str, str]] = {}
    for value in values:
        ep, sep, pair = value.partition(":")
        key, eq, setting = pair.partition("=")
        if not sep or not eq or not key:
            raise ApucodecError(f"--ep-option {value!r}: expected EP:KEY=VALUE, e.g. vitisai:target=X2")
        options.setdefault(resolve_ep_name(ep), {})[key] = setting
    return options


def session_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every codec command shares."""
    options = [
        click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
                     help="Model directory (default: $APUCODEC_MODEL, then ./apucodec-model, then the bundled "
                          "model)."),
        click.option("--encoder-ep", default=None, metavar="EP[,EP...]",
                     help="Encoder EP order (default: vitisai,cpu). Names: vitisai, cpu, webgpu, migraphx, cuda, dml."),
        click.option("--decoder-ep", default=None, metavar="EP[,EP...]",
                     help="Decoder EP order (default: webgpu,migraphx,cuda,dml,cpu)."),
        click.option("--encoder", "encoder_graph", type=click.Choice(["auto", "fp32", "int8", "bf16"]), default="auto",
                     show_default=True,
                     help="Encoder graph: auto = INT8 on NPU, FP32 on CPU; bf16 = FP32 graph as BF16 on the NPU."),
        click.option("--ep-option", "ep_options", multiple=True, metavar="EP:KEY=VALUE",
                     help="Provider option, over the manifest's 'providers' section (repeatable)."),
        click.option("--strict", is_flag=True, help="Fail instead of falling back to another EP."),
        click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Intra-op threads per ONNX Runtime session (0 = its default)."),
        click.option("--report", is_flag=True,
                     help="Print the placement report (EP asked, EP that ran, nodes per EP)."),
    ]
    for option in reversed(options):
        func = option(func)
    return stage_options(func)


def _open_codec(model_path: Path | None, encoder_ep: str | None, decoder_ep: str | None, encoder_graph: str,
                ep_options: tuple[str, ...], strict: bool, threads: int, stages: tuple[str, ...],
                workers: tuple[str, ...] = (), worker_timeout: float = 120.0, precision: str = "auto",
                ep_context_out: str | None = None, step_frames: int | None = None) -> Any:
    from apucodec.api import Codec  # the engine plus the public API's streams
    from apucodec.model_dir import default_model_path, load_model_dir
    from apucodec.runtime.providers import SessionSettings, parse_ep_list

    encoder_eps, decoder_eps = parse_ep_list(encoder_ep, "encoder"), parse_ep_list(decoder_ep, "decoder")
    parsed_options = _parse_ep_options(ep_options)
    model = load_model_dir(default_model_path(model_path))
    settings = SessionSettings(encoder_eps=encoder_eps, decoder_eps=decoder_eps, strict=strict, threads=threads,
                               ep_options=parsed_options,
                               **settings_overrides(model, workers, worker_timeout, precision, encoder_graph,
                                                    ep_context_out))
    return Codec(model, settings, stages=stages, step_frames=step_frames)


@contextlib.contextmanager
def _progress(seconds: float, total_samples: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A click progress bar on stderr for inputs long enough to wait for; None (no bar) otherwise."""
    if seconds < PROGRESS_MIN_SECONDS or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total_samples, label=label, file=sys.stderr) as bar:
        yield bar.update


def _notes(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)


def _finish(result: Any, codec: Any, report: bool, extra: str = "", shown: tuple[str, ...] = ()) -> None:
    _notes([n for n in result.notes if n not in shown])
    click.echo(result.summary(codec.model.label) + extra)
    if report:
        click.echo(codec.placement.format())


def _codec_rate_length(info: Any, rate: int) -> int:
    return round(info.frames * rate / info.sample_rate)


def _check_paths(input_path: Path, output_path: Path) -> Any:
    """Fail fast on bad input/output paths, before the (slow) sessions are opened."""
    from apucodec.runtime.audio_stream import open_input
    from apucodec.runtime.pipeline import check_distinct

    info = open_input(input_path)
    check_distinct(info.path, output_path)
    parent = output_path.parent if str(output_path.parent) else Path(".")
    if output_path.is_dir():
        raise ApucodecError(f"{output_path}: is a directory, expected an output file path")
    if not parent.is_dir():
        raise ApucodecError(f"{output_path}: output folder {parent} does not exist")
    return info


def _announce(info: Any, rate: int) -> tuple[str, ...]:
    from apucodec.runtime.pipeline import input_notes

    notes = tuple(input_notes(info, rate))
    _notes(list(notes))
    return notes


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option("--codebooks", "n_codebooks", type=click.IntRange(1, 64), default=None,
              help="Codebooks to use, 1..8 for the spec model (fewer = lower bitrate; default all).")
@click.option("--match-input", is_flag=True, help="Write at the input's sample rate instead of 44.1 kHz.")
@session_options
def run(input_path: Path, output_path: Path, n_codebooks: int | None, match_input: bool, **opts: Any) -> None:
    """Encode and decode INPUT (any audio libsndfile reads) into OUTPUT (44.1 kHz mono WAV by default)."""
    info = _check_paths(input_path, output_path)
    report = opts.pop("report")
    codec = _open_codec(**opts, stages=("encoder", "decoder"))
    shown = _announce(info, codec.sample_rate)
    with _progress(info.seconds, _codec_rate_length(info, codec.sample_rate), "run") as progress:
        result = codec.run_file(input_path, output_path, n_codebooks, match_input, progress)
    _finish(result, codec, report, f" -> {output_path}", shown)


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUTPUT.apc", type=click.Path(path_type=Path))
@click.option("--codebooks", "n_codebooks", type=click.IntRange(1, 64), default=None,
              help="Codebooks to write, 1..8 for the spec model (fewer = lower bitrate; default all).")
@session_options
def encode(input_path: Path, output_path: Path, n_codebooks: int | None, **opts: Any) -> None:
    """Compress INPUT (any audio libsndfile reads) into an .apc code file."""
    info = _check_paths(input_path, output_path)
    report = opts.pop("report")
    codec = _open_codec(**opts, stages=("encoder",))
    shown = _announce(info, codec.sample_rate)
    with _progress(info.seconds, _codec_rate_length(info, codec.sample_rate), "encode") as progress:
        result = codec.encode_file(input_path, output_path, n_codebooks, progress)
    size = output_path.stat().st_size
    _finish(result, codec, report, f" -> {output_path} ({size} bytes, {size * 8 / result.audio_seconds / 1000:.2f} "
            "kbps with header)", shown)


@click.command()
@click.argument("input_path", metavar="INPUT.apc", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Decode an .apc made by another model (same codebook shape).")
@click.option("--match-input", is_flag=True, help="Write at the original input's sample rate (from the .apc).")
@session_options
def decode(input_path: Path, output_path: Path, force: bool, match_input: bool, **opts: Any) -> None:
    """Decode an .apc code file into OUTPUT (44.1 kHz mono WAV by default)."""
    from apucodec.runtime.bitstream import read_apc
    from apucodec.runtime.pipeline import check_distinct

    header, _ = read_apc(input_path)  # refuse a bad file before the sessions are opened
    check_distinct(input_path, output_path)
    report = opts.pop("report")
    codec = _open_codec(**opts, stages=("decoder",))
    codec.check_header(header, input_path, force)
    with _progress(header.seconds, header.original_length, "decode") as progress:
        result = codec.decode_file(input_path, output_path, force, match_input, progress)
    _finish(result, codec, report, f" -> {output_path}")

