"""`apucodec export`: a checkpoint -> a verified model directory (encoder and decoder step graphs, codebooks.npy)."""

from __future__ import annotations

from pathlib import Path

import click

from apucodec.errors import ApucodecError, require
from apucodec.export.specs import DEFAULT_OPSET, DEFAULT_STEP_FRAMES
from apucodec.model.directory import DEFAULT_DIR_NAME


def parse_step_frames(text: str) -> tuple[int, ...]:
    """'4,64' -> (4, 64); one line naming the option on anything else."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ApucodecError(f"--step-frames takes whole numbers separated by commas (e.g. 4,64), not {text!r}") \
            from None
    if not sizes:
        raise ApucodecError("--step-frames needs at least one step size")
    return sizes


@click.command("export")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(path_type=Path),
              help="Checkpoint written by 'apucodec train', the original APU-Codec's bare state dict, or "
                   "the encodec package's state dict (encodec_24khz-*.th).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path(DEFAULT_DIR_NAME), show_default=True,
              help="Model directory to create.")
@click.option("--step-frames", default=",".join(map(str, DEFAULT_STEP_FRAMES)), show_default=True,
              help="Step sizes in 512-sample frames, one encoder and one decoder step graph each: a small live step "
                   "(low latency) and a large offline one (throughput).")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True, help="ONNX opset.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim simplification.")
@click.option("--codebooks-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--inline-weights", is_flag=True,
              help="Keep every weight inside each step graph instead of one shared weights file per stage.")
@click.option("--family", default=None, help="Codec family of the checkpoint (apucodec, dac, encodec), when "
              "recognising it from its keys is ambiguous. Default: recognised from the keys.")
@click.option("--reference-audio", type=click.Path(path_type=Path), default=None,
              help="GroupNorm (seed) models: recordings (a file or folder) on which the step graphs' approximate "
                   "streaming is measured and recorded (default: synthetic signals).")
@click.option("--force", is_flag=True, help="Replace --out if it exists and is not empty.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final line.")
def export(checkpoint: Path, out: Path, step_frames: str, opset: int, no_simplify: bool, codebooks_dtype: str,
           inline_weights: bool, family: str | None, reference_audio: Path | None, force: bool, quiet: bool) -> None:
    """Export a checkpoint's encoder and decoder to ONNX step graphs and verify them against PyTorch."""
    sizes = parse_step_frames(step_frames)
    require("torch", "export")
    require("onnx", "export")  # onnxsim (or onnxslim) is checked when simplification runs
    from apucodec.export.model_export import export_model

    log = None if quiet else (lambda message: click.echo(message, err=True))
    model = export_model(checkpoint, out, step_frames=sizes, opset=opset, simplify=not no_simplify, force=force,
                         codebooks_dtype=codebooks_dtype, log=log, share_weights=not inline_weights, family=family,
                         reference_audio=reference_audio)
    streaming = model.manifest.streaming
    worst = min(p["snr_db"] if p["snr_db"] is not None else float("inf")
                for p in model.manifest.export.parity.values())
    latency = ", ".join(f"{s} frames {v['ms']} ms" for s, v in streaming.algorithmic_latency.items())
    click.echo(f"wrote {model.label}: step graphs at {', '.join(map(str, sizes))} frames; lookahead encoder "
               f"{streaming.encoder.delay_ms} ms + decoder {streaming.decoder.delay_ms} ms; algorithmic "
               f"latency {latency}; " + _parity_text(model, worst))


def _parity_text(model: object, worst: float) -> str:
    approximate = model.manifest.export.approximate
    if not approximate:
        return f"streamed-vs-whole-file parity >= {worst} dB"
    snrs = ", ".join(f"{role} {m['snr_db']} dB" for role, m in approximate["graphs"].items())
    return (f"offline: whole-sequence graphs, parity >= {worst} dB; streaming is approximate (GroupNorm, running "
            f"statistics): {snrs} vs whole-file")
