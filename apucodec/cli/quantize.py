"""`apucodec quantize`: INT8 graphs calibrated on real audio — for the CPU EP (`--target cpu`: encoder and decoder,
onnxruntime.quantization) or for the NPU (`--target npu`: the encoder, AMD Quark; `quantize-encoder` is its alias).

Progress goes to stderr as a bar on a terminal and as plain timestamped lines otherwise (a log file, CI), and to
the `apucodec.quantize` logger either way.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

LOG = logging.getLogger("apucodec.quantize")


class _StepProgress:
    """Progress over calibration steps, opened when the quantizer asks for the first one: a stderr bar on a
    terminal, plain lines every ~10 % (elapsed, estimate left) otherwise, and log records in both cases."""

    def __init__(self) -> None:
        self._bar = None
        self._done = 0
        self._finished = False
        self._stream = sys.stderr   # captured now: while Quark runs, its own output is redirected
        self._tty = self._stream.isatty()
        self._started = 0.0

    def _line(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self._started
        left = f", ~{elapsed / done * (total - done):.0f} s left" if 0 < done < total else ""
        message = f"calibration steps {done}/{total}, {elapsed:.1f} s{left}"
        LOG.info(message)
        if not self._tty:
            print(f"{time.strftime('%H:%M:%S')} {message}", file=self._stream, flush=True)

    def update(self, done: int, total: int) -> None:
        if self._finished:
            return
        if not self._started:
            self._started = time.perf_counter()
        if done > self._done and (done == total or done % max(1, total // 10) == 0):
            self._line(done, total)
        if not self._tty:
            self._done = max(self._done, done)
            self._finished = done >= total
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label="calibration steps", file=self._stream)
            self._bar.__enter__()
        if done > self._done:       # a second pass over the steps (rewind) is not counted again
            self._bar.update(done - self._done)
            self._done = done
        if done >= total:
            self.close()
            self._finished = True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@click.command("quantize")
@click.option("--target", type=click.Choice(["cpu", "npu"], case_sensitive=False), default="cpu", show_default=True,
              help="cpu: INT8 encoder and decoder for ONNX Runtime's CPU EP (uint8 activations, integer kernels); "
                   "npu: the encoder for the Vitis AI EP with AMD Quark (same as quantize-encoder).")
@click.option("--model", "model_option", type=click.Path(path_type=Path), default=None,
              help="Model directory (default: $APUCODEC_MODEL, else ./apucodec-model).")
@click.option("--calib", "calib", type=click.Path(path_type=Path), required=True,
              help="Folder of recordings to calibrate on (searched recursively, any format libsndfile reads).")
@click.option("--clips", type=click.IntRange(min=1), default=None,
              help="cpu: calibration clips of 4 offline steps each (default 16); held-out clips come on top.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="npu: calibration steps (default 64); held-out clips come on top.")
@click.option("--method", type=click.Choice(["minmax", "percentile", "entropy", "tail"]), default=None,
              help="cpu: how activation ranges are set from the calibration activations (default: tail for the "
                   "encoder, percentile for the decoder).")
@click.option("--preset", "preset_name", type=click.Choice(["auto", "xint8", "a8w8", "a16w8", "bf16"],
                                                           case_sensitive=False),
              default="auto", show_default=True, help="npu: the Quark preset (see quantize-encoder --help).")
@click.option("--seed", default=0, show_default=True, help="Seed of the clip selection.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="ONNX Runtime threads for the fidelity check (0: auto).")
@click.option("--verbose", is_flag=True, help="npu: show Quark's own progress output.")
@click.pass_context
def quantize(ctx: click.Context, target: str, model_option: Path | None, calib: Path, clips: int | None,
             steps: int | None, method: str | None, preset_name: str, seed: int, threads: int,
             verbose: bool) -> None:
    """Quantize the model directory's graphs to INT8 for the CPU EP or the NPU, calibrated on real recordings."""
    from apucodec.errors import ApucodecError

    if target.lower() == "npu":
        if clips is not None:
            raise ApucodecError("--clips sets the CPU target's calibration; the NPU target takes --steps")
        ctx.invoke(quantize_encoder, model_option=model_option, calib=calib, preset_name=preset_name,
                   steps=steps or 64, seed=seed, conv2d=False, threads=threads, verbose=verbose)
        return
    if steps is not None:
        raise ApucodecError("--steps sets the NPU target's calibration; the CPU target takes --clips")
    from apucodec.calibration.cpu_quantize import DEFAULT_CPU_CLIPS, quantize_cpu
    from apucodec.model.location import locate_model

    model_path = locate_model(model_option, writing=True).path
    result = quantize_cpu(model_path, calib, clips=clips or DEFAULT_CPU_CLIPS, method=method, seed=seed,
                          threads=threads, on_status=lambda m: click.echo(m, err=True))
    for line in result.lines():
        click.echo(line)


@click.command("quantize-encoder")
@click.option("--model", "model_option", type=click.Path(path_type=Path), default=None,
              help="Model directory (default: $APUCODEC_MODEL, else ./apucodec-model).")
@click.option("--calib", "calib", type=click.Path(path_type=Path), required=True,
              help="Folder of recordings to calibrate on (searched recursively, any format libsndfile reads).")
@click.option("--preset", "preset_name", type=click.Choice(["auto", "xint8", "a8w8", "a16w8", "bf16"],
                                                           case_sensitive=False),
              default="auto", show_default=True,
              help="auto: xint8 unless the graph has ops its flow lacks (Sin: DAC's Snake), then a16w8, with the "
                   "reason printed; xint8: power-of-two int8, the NPU preset; a8w8: float-scale int8; "
                   "a16w8: int16 activations; "
                   "bf16: Quark custom ops (needs amd-quark + torch where it runs).")
@click.option("--steps", type=click.IntRange(min=1), default=64, show_default=True,
              help="Calibration steps: clips of a few steps each are streamed through the FP32 step graph and each "
                   "step's inputs recorded (held-out clips for the fidelity report come on top).")
@click.option("--seed", default=0, show_default=True, help="Seed of the clip selection.")
@click.option("--step-frames", "step_frames", default="all", show_default=True,
              help="Which encoder step graphs to quantize: all (each step the NPU may run: the live and the offline "
                   "one), or frames per step, e.g. 128 or 4,128.")
@click.option("--conv2d", is_flag=True, help="Express the Conv1d layers as Conv2d with height 1 before quantizing "
              "(for NPU compilers that only map 2-D convolutions); inputs and outputs keep their shapes.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Threads for Quark's range search and ONNX Runtime's fidelity check (0: one per CPU).")
@click.option("--verbose", is_flag=True, help="Show Quark's own progress output.")
def quantize_encoder(model_option: Path | None, calib: Path, preset_name: str, steps: int, seed: int,
                     step_frames: str, conv2d: bool, threads: int, verbose: bool) -> None:
    """Quantize the encoder's step graphs with AMD Quark: encoder.s{S}.npu-int8.onnx next to each."""
    from apucodec.calibration.quantize import quantize_encoder as run_quantize
    from apucodec.model.location import locate_model

    model_path = locate_model(model_option, writing=True).path
    for frames in _encoder_steps(model_path, step_frames):
        progress = _StepProgress()
        try:
            result = run_quantize(model_path, calib, preset_name=preset_name.lower(), steps=steps, seed=seed,
                                  conv2d=conv2d, on_step=progress.update,
                                  on_status=lambda m: click.echo(m, err=True), quiet=not verbose, threads=threads,
                                  step_frames=frames)
        finally:
            progress.close()
        for line in result.lines():
            click.echo(line)


def _encoder_steps(model_path: Path, value: str) -> list[int | None]:
    """--step-frames: "all" -> every FP32 encoder step of the model directory, else the listed sizes."""
    from apucodec.errors import ApucodecError
    from apucodec.model.directory import load_model_dir

    if value.strip().lower() == "all":
        try:
            return list(load_model_dir(model_path).step_sizes("encoder")) or [None]
        except ApucodecError:
            return [None]  # the quantize pass reports the model directory's problem in its own words
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise ApucodecError(f"--step-frames {value!r}: expected all or numbers like 4,128") from None
