"""`apucodec eval`: quality of one or more models on a folder of clips, per clip and on average, next to Opus."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _codebook_counts(values: tuple[str, ...]) -> list[int | None]:
    counts: list[int | None] = []
    for value in values:
        for part in value.split(","):
            try:
                counts.append(int(part))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a number of codebooks", param_hint="--codebooks") from None
    return counts or [None]


@click.command(name="eval")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="Model directory (repeatable: one column each). Default: as `run` picks it.")
@click.option("--codebooks", "codebooks", multiple=True,
              help="Codebooks to decode with, e.g. 8 or 2,4,8 (repeatable; default: all).")
@click.option("--opus", "opus", multiple=True, type=click.FloatRange(min=6, max=256),
              help="Also Opus at this bitrate in kbps (repeatable); needs opusenc/opusdec (apt install opus-tools).")
@click.option("--variants", type=click.Choice(["default", "all"]), default="default", show_default=True,
              help="default: what `run` does on this machine; all: every graph of the model on the CPU EP (FP32, "
                   "NPU INT8 encoder, CPU INT8), INT8 floor off and on.")
@click.option("--only", multiple=True, help="With --variants all: FP32 and the variants starting with this.")
@click.option("--no-visqol", is_flag=True, help="Skip ViSQOL even when visqol-python is installed (it is slow).")
@click.option("--json", "as_json", is_flag=True, help="Print every number as JSON instead of tables.")
def eval_command(folder: Path, models: tuple[Path, ...], codebooks: tuple[str, ...], opus: tuple[float, ...],
                 variants: str, only: tuple[str, ...], no_visqol: bool, as_json: bool) -> None:
    """SI-SDR, mel distance, ViSQOL (when installed), the frame-rate comb and the bitrate of every audio file
    under FOLDER through the codec (and Opus), per clip and averaged."""
    from apucodec.errors import ApucodecError
    from apucodec.model.location import locate_model
    from apucodec.tools.eval_opus import opus_tools
    from apucodec.tools.eval_quality import evaluate, systems_for
    from apucodec.tools.eval_report import format_result

    if opus and opus_tools() is None:
        raise ApucodecError("--opus needs opusenc and opusdec on PATH (Debian/Ubuntu: apt install opus-tools)")
    if not folder.is_dir():
        raise ApucodecError(f"{folder}: not a directory of audio files")
    dirs = [locate_model(m).path for m in models] or [locate_model(None).path]
    systems = systems_for(dirs, _codebook_counts(codebooks), opus, variants, only=only)
    progress = None
    if sys.stderr.isatty():
        def progress(system: str, clip: str) -> None:
            click.echo(f"\r\x1b[K{system}: {clip}", err=True, nl=False)
    result = evaluate(folder, systems, progress, use_visqol=not no_visqol)
    if progress is not None:
        click.echo("\r\x1b[K", err=True, nl=False)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else format_result(result))
