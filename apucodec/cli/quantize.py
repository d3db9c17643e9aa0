"""`apucodec quantize-encoder`: an INT8 encoder for the NPU, calibrated with AMD Quark on real audio."""

from __future__ import annotations

import sys
from pathlib import Path

import click


class _WindowProgress:
    """A stderr progress bar over calibration windows, opened when the quantizer asks for the first one."""

    def __init__(self) -> None:
        self._bar = None
        self._done = 0
        self._finished = False
        self._stream = sys.stderr   # captured now: while Quark runs, its own output is redirected

    def update(self, done: int, total: int) -> None:
        if self._finished:
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label="calibration steps", file=self._stream)
            self._bar.__enter__()
        if done > self._done:       # a second pass over the windows (rewind) is not counted again
            self._bar.update(done - self._done)
            self._done = done
        if done >= total:
            self.close()
            self._finished = True

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@click.command("quantize-encoder")
@click.option("--model", "model_option", type=click.Path(path_type=Path), default=None,
              help="Model directory (default: $APUCODEC_MODEL, else ./apucodec-model).")
@click.option("--calib", "calib", type=click.Path(path_type=Path), required=True,
              help="Folder of recordings to calibrate on (searched recursively, any format libsndfile reads).")
@click.option("--preset", "preset_name", type=click.Choice(["xint8", "a8w8", "a16w8", "bf16"], case_sensitive=False),
              default="xint8", show_default=True,
              help="xint8: power-of-two int8, the NPU preset; a8w8: float-scale int8; a16w8: int16 activations; "
                   "bf16: Quark custom ops (needs amd-quark + torch where it runs).")
@click.option("--steps", "--windows", "steps", type=click.IntRange(min=1), default=64, show_default=True,
              help="Calibration steps: clips of a few steps each are streamed through the FP32 step graph and each "
                   "step's inputs recorded (held-out clips for the fidelity report come on top).")
@click.option("--seed", default=0, show_default=True, help="Seed of the clip selection.")
@click.option("--conv2d", is_flag=True, help="Express the Conv1d layers as Conv2d with height 1 before quantizing "
              "(for NPU compilers that only map 2-D convolutions); inputs and outputs keep their shapes.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="ONNX Runtime threads for the fidelity check (0: auto).")
@click.option("--verbose", is_flag=True, help="Show Quark's own progress output.")
def quantize_encoder(model_option: Path | None, calib: Path, preset_name: str, steps: int, seed: int, conv2d: bool,
                     threads: int, verbose: bool) -> None:
    """Quantize the encoder's offline step graph with AMD Quark: encoder.s{S}.npu-int8.onnx next to it."""
    from apucodec.calibration.quantize import quantize_encoder as run_quantize
    from apucodec.model_dir import default_model_path

    model_path = default_model_path(model_option, allow_bundled=False)
    progress = _WindowProgress()
    try:
        result = run_quantize(model_path, calib, preset_name=preset_name.lower(), steps=steps, seed=seed,
                              conv2d=conv2d, on_step=progress.update, on_status=lambda m: click.echo(m, err=True),
                              quiet=not verbose, threads=threads)
    finally:
        progress.close()
    for line in result.lines():
        click.echo(line)
