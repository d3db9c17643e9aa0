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

from apucodec.cli.codebooks import BANDWIDTH_HELP, CODEBOOKS_HELP, check_codebooks, codebooks_for_bandwidth
from apucodec.cli.param_types import file_path
from apucodec.cli.stage_options import check_npu_precision, refuse_unused, settings_overrides, stage_options
from apucodec.errors import ApucodecError
from apucodec.io.outputs import describe, extension, is_stdio
from apucodec.io.stdio import stdin_input

PROGRESS_MIN_SECONDS = 5.0


def _parse_ep_options(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """--ep-option EP:KEY=VALUE (repeatable), e.g. vitisai:target=X2, webgpu:preferredLayout=NHWC."""
    from apucodec.runtime.eps import resolve_ep_name

    options: dict[str, dict[str, str]] = {}
    for value in values:
        ep, sep, pair = value.partition(":")
        key, eq, setting = pair.partition("=")
        if not sep or not eq or not key:
            raise ApucodecError(f"--ep-option {value!r}: expected EP:KEY=VALUE, e.g. vitisai:target=X2")
        options.setdefault(resolve_ep_name(ep), {})[key] = setting
    return options


def engine_options(func: Callable[..., Any] | None = None, *,
                    stages: tuple[str, ...] = ("encoder", "decoder")) -> Any:
    """The options every codec command shares, limited to the stages it runs (`encode --help` shows no decoder)."""
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
                         help="Model directory (default: $APUCODEC_MODEL, then ./apucodec-model, then the bundled "
                              "model)."),
        ]
        # A stage the command does not run keeps its options hidden (accepted, so one option set can be shared
        # by scripts calling run/encode/decode, but not advertised by --help).
        hide_encoder, hide_decoder = "encoder" not in stages, "decoder" not in stages
        options += [
            click.option("--encoder-ep", default=None, metavar="EP[,EP...]", hidden=hide_encoder,
                         help="Encoder EP order (default: vitisai,cpu). Names: vitisai, cpu, webgpu, migraphx, "
                              "cuda, dml."),
            click.option("--encoder", "encoder_graph", type=click.Choice(["auto", "fp32", "int8", "bf16"]),
                         default="auto", show_default=True, hidden=hide_encoder,
                         help="Encoder graph: auto = INT8 on NPU, CPU INT8 on the CPU when the model has it, else "
                              "FP32; bf16 = FP32 graph as BF16 on the NPU."),
            click.option("--decoder-ep", default=None, metavar="EP[,EP...]", hidden=hide_decoder,
                         help="Decoder EP order (default: webgpu,migraphx,cuda,dml,cpu)."),
        ]
        options += [
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
        return stage_options(func, stages)
    return decorate(func) if func is not None else decorate


def _open_codec(model_path: Path | None, ep_options: tuple[str, ...], strict: bool, threads: int,
                stages: tuple[str, ...], encoder_ep: str | None = None, decoder_ep: str | None = None,
                encoder_graph: str = "auto", n_codebooks: int | None = None, workers: tuple[str, ...] = (),
                worker_timeout: float = 120.0, precision: str = "auto", ep_context_out: str | None = None,
                step_frames: int | None = None, int8_floor: float | None = None) -> Any:
    """The CLI's options -> `apucodec.load()`, the one way every caller opens a codec. (The CLI's --precision int8
    keeps its meaning, the NPU's INT8 graph wherever the encoder runs; load()'s "int8" is the EP's own INT8.)"""
    from apucodec.api import load
    from apucodec.model.directory import load_model_dir
    from apucodec.model.location import locate_model
    from apucodec.runtime.eps import warn_stderr

    command = click.get_current_context(silent=True)
    refuse_unused(command.info_name if command else "this command", stages,
                  {"encoder_ep": encoder_ep, "decoder_ep": decoder_ep, "encoder_graph": encoder_graph,
                   "ep_context_out": ep_context_out, "precision": precision, "workers": workers})
    parsed_options = _parse_ep_options(ep_options)
    model = load_model_dir(locate_model(model_path).path)
    overrides = settings_overrides(model, workers, worker_timeout, precision, encoder_graph, ep_context_out,
                                   int8_floor)
    check_codebooks(n_codebooks, model)  # before the (slow) sessions open
    graph = overrides["encoder_graph"]
    chosen = graph if graph in ("fp32", "bf16") else "auto"
    fields = {key: overrides[key] for key in ("encoder_graph", "decoder_graph", "ep_context", "worker_timeout")}
    codec = load(model.path, precision=chosen, int8_floor=overrides["int8_floor_dbfs"],
                 eps={"encoder": encoder_ep, "decoder": decoder_ep}, workers=overrides["workers"], threads=threads,
                 strict=strict, step_frames=step_frames, stages=stages, ep_options=parsed_options,
                 settings_fields=fields, warn=warn_stderr)
    if "encoder" in stages:
        check_npu_precision(graph, codec.placement)
    return codec


def _folder(kind: str, root: Path, out_root: Path, opts: dict[str, Any], stages: tuple[str, ...],
            n_codebooks: int | None, work: Callable[[Any, Path, Path], Any]) -> None:
    from apucodec.cli.folders import run_folder

    run_folder(kind, root, out_root, lambda: _open_codec(**opts, stages=stages, n_codebooks=n_codebooks), work)


@contextlib.contextmanager
def _progress(seconds: float, total_samples: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A click progress bar on stderr for inputs long enough to wait for; None (no bar) otherwise."""
    if seconds < PROGRESS_MIN_SECONDS or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total_samples, label=label, file=sys.stderr) as bar:
        yield bar.update


def _notes(notes: list[str], rename: tuple[str, str] = ("", "")) -> None:
    from apucodec.io.path_names import printable

    for note in notes:
        click.echo(printable(f"note: {note.replace(*rename) if rename[0] else note}"), err=True)


def _finish(result: Any, codec: Any, report: bool, extra: str = "", shown: tuple[str, ...] = (),
            to_stderr: bool = False, rename: tuple[str, str] = ("", "")) -> None:
    """The summary line (on stderr when the output itself goes to stdout, so a pipe gets only the audio). The INT8
    floor's step counts are routine on ordinary input: they appear with --report only."""
    from apucodec.io.path_names import printable
    from apucodec.runtime.int8_floor import is_floor_note

    _notes([n for n in result.notes if n not in shown and (report or not is_floor_note(n))], rename)
    click.echo(printable(result.summary(codec.model.label) + extra), err=to_stderr)
    if report:
        click.echo(codec.placement.format(), err=to_stderr)


def _codec_rate_length(info: Any, rate: int) -> int:
    return round(info.frames * rate / info.sample_rate)


def _check_paths(input_path: Path, output_path: Path, audio_output: bool = True) -> Any:
    """Fail fast on bad input/output paths, before the (slow) sessions are opened."""
    from apucodec.io.audio_read import probe

    info = probe(input_path)
    check_output(output_path, info.path, audio_output)
    return info


def check_output(output_path: Path, source: Path, audio_output: bool = True) -> None:
    """Every check on OUTPUT that can fail before slow work starts, in one order for every command: the format its
    extension names (audio) or that it names none (.apc), that it is not the input, and that it can be written."""
    from apucodec.io.audio_write import output_format
    from apucodec.io.outputs import check_output_path
    from apucodec.runtime.codec_runner import check_distinct

    if audio_output:
        output_format(output_path)
    else:
        _check_apc_output(output_path)
    if not is_stdio(output_path):
        check_distinct(source, output_path)
    check_output_path(output_path)


def _check_apc_output(output_path: Path) -> None:
    from apucodec.io.audio_write import OUTPUT_EXTENSIONS

    if extension(output_path) in OUTPUT_EXTENSIONS:
        raise ApucodecError(f"{output_path}: encode writes .apc codes, not {output_path.suffix} audio; use "
                            "'apucodec run' for audio, or name the output .apc")


def _announce(info: Any, rate: int, rename: tuple[str, str]) -> tuple[str, ...]:
    from apucodec.runtime.codec_runner import input_notes

    notes = tuple(input_notes(info, rate))
    _notes(list(notes), rename)
    return notes


@click.command()
@click.argument("input_path", metavar="INPUT", type=file_path("input"))
@click.argument("output_path", metavar="OUTPUT", type=file_path())
@click.option("--codebooks", "n_codebooks", type=click.IntRange(min=1), default=None, help=CODEBOOKS_HELP)
@click.option("--bandwidth", type=float, default=None, metavar="KBPS", help=BANDWIDTH_HELP)
@click.option("--match-input", is_flag=True, help="Write at the input's sample rate instead of 44.1 kHz.")
@click.option("--mono", is_flag=True, help="Average the channels first (default: each channel coded on its own).")
@engine_options
def run(input_path: Path, output_path: Path, n_codebooks: int | None, bandwidth: float | None, match_input: bool,
        mono: bool,
        **opts: Any) -> None:
    """Encode and decode INPUT (any audio libsndfile reads) into OUTPUT (44.1 kHz mono WAV by default).

    `-` as INPUT reads standard input (spooled to an unnamed temp file, so any format works); `-` as OUTPUT writes a
    streamed WAV to standard output (the summary then goes to stderr). An existing device or FIFO is written in
    place, never replaced. A folder as INPUT: every audio file in it, mirrored into the folder OUTPUT.
    """
    if input_path.is_dir():
        report = opts.pop("report")
        _folder("run", input_path, output_path, opts, ("encoder", "decoder"), n_codebooks,
                lambda codec, src, dst: codec.run_file(src, dst, n_codebooks, match_input, None, mono))
        return
    with stdin_input(input_path) as (source, label):
        info = _check_paths(source, output_path)
        report = opts.pop("report")
        codec = _open_codec(**opts, stages=("encoder", "decoder"), n_codebooks=n_codebooks)
        n_codebooks = codebooks_for_bandwidth(n_codebooks, bandwidth, codec)
        shown = _announce(info, codec.sample_rate, (str(source), label))
        with _progress(info.seconds, _codec_rate_length(info, codec.sample_rate), "run") as progress:
            result = codec.run_file(source, output_path, n_codebooks, match_input, progress, mono)
    _finish(result, codec, report, f" -> {describe(output_path)}", shown, is_stdio(output_path), (str(source), label))


@click.command()
@click.argument("input_path", metavar="INPUT", type=file_path("input"))
@click.argument("output_path", metavar="OUTPUT.apc", type=file_path())
@click.option("--codebooks", "n_codebooks", type=click.IntRange(min=1), default=None, help=CODEBOOKS_HELP)
@click.option("--bandwidth", type=float, default=None, metavar="KBPS", help=BANDWIDTH_HELP)
@click.option("--mono", is_flag=True, help="Average the channels first (default: each channel coded on its own).")
@engine_options(stages=("encoder",))
def encode(input_path: Path, output_path: Path, n_codebooks: int | None, bandwidth: float | None, mono: bool,
           **opts: Any) -> None:
    """Compress INPUT (any audio libsndfile reads) into an .apc code file (`-`: standard input / output; a folder:
    every audio file in it, mirrored into the folder OUTPUT)."""
    if input_path.is_dir():
        opts.pop("report")
        _folder("encode", input_path, output_path, opts, ("encoder",), n_codebooks,
                lambda codec, src, dst: codec.encode_file(src, dst, n_codebooks, None, mono))
        return
    with stdin_input(input_path) as (source, label):
        info = _check_paths(source, output_path, audio_output=False)
        report = opts.pop("report")
        codec = _open_codec(**opts, stages=("encoder",), n_codebooks=n_codebooks)
        n_codebooks = codebooks_for_bandwidth(n_codebooks, bandwidth, codec)
        shown = _announce(info, codec.sample_rate, (str(source), label))
        with _progress(info.seconds, _codec_rate_length(info, codec.sample_rate), "encode") as progress:
            result = codec.encode_file(source, output_path, n_codebooks, progress, mono)
    # header + packed codes + CRC, computed: the output may be stdout or a device, where stat() says nothing
    from apucodec.io.apc_header import HEADER_SIZE

    channels = 1 if mono else info.channels
    size = -(-channels * result.frames * result.n_codebooks * codec.config.bits_per_code // 8) + HEADER_SIZE + 4
    _finish(result, codec, report, f" -> {describe(output_path)} ({size} bytes, "
            f"{size * 8 / result.audio_seconds / 1000:.2f} kbps with header)", shown, is_stdio(output_path),
            (str(source), label))


@click.command()
@click.argument("input_path", metavar="INPUT.apc", type=file_path("input"))
@click.argument("output_path", metavar="OUTPUT", type=file_path())
@click.option("--force", is_flag=True, help="Decode an .apc made by another model (same codebook shape).")
@click.option("--match-input", is_flag=True, help="Write at the original input's sample rate (from the .apc).")
@engine_options(stages=("decoder",))
def decode(input_path: Path, output_path: Path, force: bool, match_input: bool, **opts: Any) -> None:
    """Decode an .apc code file into OUTPUT (44.1 kHz WAV with the encoded channels by default; `-`: standard input
    / output; a folder: every .apc in it, mirrored into the folder OUTPUT)."""
    from apucodec.io.apc_reader import open_apc

    if input_path.is_dir():
        opts.pop("report")
        _folder("decode", input_path, output_path, opts, ("decoder",), None,
                lambda codec, src, dst: codec.decode_file(src, dst, force, match_input))
        return
    with stdin_input(input_path) as (source, label):
        with open_apc(source, label) as reader:  # the header alone, checked before the sessions are opened
            header = reader.header
        check_output(output_path, source)
        report = opts.pop("report")
        codec = _open_codec(**opts, stages=("decoder",))
        codec.check_header(header, Path(label), force)
        with _progress(header.seconds, header.original_length, "decode") as progress:
            result = codec.decode_file(source, output_path, force, match_input, progress)
    _finish(result, codec, report, f" -> {describe(output_path)}", to_stderr=is_stdio(output_path),
            rename=(str(source), label))
