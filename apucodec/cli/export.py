"""`apucodec export`: a checkpoint -> a verified model directory (encoder.onnx, codebooks.npy, decoder.onnx)."""

from __future__ import annotations

from pathlib import Path

import click

from apucodec.export import DEFAULT_CHUNK_SECONDS, DEFAULT_OPSET
from apucodec.extras import require
from apucodec.model_dir import DEFAULT_DIR_NAME


@click.command("export")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(path_type=Path),
              help="Checkpoint written by 'apucodec train', or the original APU-Codec's bare state dict.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path(DEFAULT_DIR_NAME), show_default=True,
              help="Model directory to create.")
@click.option("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS, show_default=True,
              help="New audio per static window (rounded to whole 512-sample frames); context is added on both "
                   "sides to cover the receptive field.")
@click.option("--context-frames", type=int, default=None,
              help="Context frames on each side of a window (default: the receptive field; never less).")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True, help="ONNX opset.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim simplification.")
@click.option("--codebooks-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--force", is_flag=True, help="Replace --out if it exists and is not empty.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final line.")
def export(checkpoint: Path, out: Path, chunk_seconds: float, context_frames: int | None, opset: int,
           no_simplify: bool, codebooks_dtype: str, force: bool, quiet: bool) -> None:
    """Export a checkpoint's encoder and decoder to ONNX and verify them against PyTorch."""
    require("torch", "export")
    require("onnx", "export")  # onnxsim (or onnxslim) is checked when simplification runs
    from apucodec.export.pipeline import export_model

    log = None if quiet else (lambda message: click.echo(message, err=True))
    model = export_model(checkpoint, out, chunk_seconds=chunk_seconds, context_frames=context_frames, opset=opset,
                         simplify=not no_simplify, force=force, codebooks_dtype=codebooks_dtype, log=log)
    g = model.geometry
    parity = model.manifest["export"]["parity"]
    click.echo(f"wrote {model.label}: window {g.window_frames} frames ({g.chunk_frames} chunk + 2 x "
               f"{g.context_frames} context), parity SNR encoder {parity['encoder']['snr_db']} dB, "
               f"decoder {parity['decoder']['snr_db']} dB")

