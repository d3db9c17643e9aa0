"""`apucodec tokenize CORPUS OUT`: a folder or manifest of audio to Parquet shards of codes, on Ray Data.

Thin: parse, call apucodec.dataset.tokenize, print one summary line. Progress (audio-hours per hour) goes to
stderr; bad files never stop the job and are listed in OUT/failures.parquet, but a problem with the job itself
(OUT made by another model, unreachable Ray cluster, missing extra) is one `error:` line and a non-zero exit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("corpus", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--codebooks", "n_codebooks", type=click.IntRange(1, 64), default=None,
              help="Codebooks per frame (default: all of the model's).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Encoder actors, each holding one runtime codec.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="ONNX Runtime threads (and Ray CPUs) per encoder actor.")
@click.option("--shard-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rows per Parquet shard (a killed job redoes at most the unfinished shard).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="An existing Ray cluster (e.g. 10.0.0.5:6379 or auto); default: a local Ray for this run.")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Model directory (default: $APUCODEC_MODEL, then ./apucodec-model, then the bundled model).")
@click.option("--precision", type=click.Choice(["fp32", "int8", "auto"]), default="fp32", show_default=True,
              help="Encoder graph precision. fp32: the same codes on any machine; int8: the EP's INT8 graph (NPU "
                   "or CPU; their codes differ from FP32's and from each other's); auto: the fastest graph here. "
                   "An output folder holds one precision's codes.")
def tokenize(corpus: Path, out: Path, n_codebooks: int | None, workers: int, threads: int, shard_size: int,
             ray_address: str | None, model_path: Path | None, precision: str) -> None:
    """Encode every audio file of CORPUS (a folder, or a CSV/JSONL/Parquet manifest with a 'path' column) into
    Parquet shards of codes in OUT. Rerunning skips what is done (by content sha256)."""
    from apucodec.dataset.tokenize_run import TokenizeOptions
    from apucodec.dataset.tokenize_run import tokenize as run_tokenize

    options = TokenizeOptions(model=model_path, codebooks=n_codebooks, workers=workers, threads=threads,
                              shard_size=shard_size, ray_address=ray_address, precision=precision)
    try:
        report = run_tokenize(corpus, out, options)
    except KeyboardInterrupt:
        click.echo(f"interrupted: the complete shards in {out} are kept; run the same command again to resume",
                   err=True)
        sys.exit(130)
    for failure in report.failures[:20]:
        click.echo(f"skipped: {failure['path']}: {failure['reason']}", err=True)
    if report.failed > 20:
        click.echo(f"skipped: ... and {report.failed - 20} more (see {out / 'failures.parquet'})", err=True)
    click.echo(report.summary(out))
