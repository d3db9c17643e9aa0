"""`apucodec train`: train a codec on a folder of audio.

On several devices or machines, launch it with torchrun (data-parallel; only rank 0 logs and writes --out):
    torchrun --nproc_per_node 4 -m apucodec train DATA --out ckpt.pt
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 -m apucodec train DATA
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from apucodec.cli.param_types import file_path, finite_float
from apucodec.errors import require


@contextlib.contextmanager
def _progress_bar(steps: int) -> Iterator[Callable[[int, str | None], None] | None]:
    """A progress bar on a terminal (loss and codebook usage as its status); plain log lines elsewhere."""
    if not steps or not sys.stderr.isatty():
        yield None
        return
    status = {"text": ""}
    with click.progressbar(length=steps, label="training", file=sys.stderr,
                           item_show_func=lambda _: status["text"]) as bar:
        def update(step: int, text: str | None) -> None:
            if text:
                status["text"] = text
            bar.update(step - bar.pos)

        yield update


@click.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--out", "out", type=file_path(), default=Path("ckpt.pt"), show_default=True,
              help="Checkpoint file to write (rewritten at every checkpoint).")
@click.option("--preset", "preset_name", default="default", show_default=True,
              help="Config preset: default (32.4M, the spec), small, small-causal, tiny, tiny-causal, seed.")
@click.option("--activation", type=click.Choice(["gelu", "leaky_relu"]), default=None,
              help="Override the preset's activation.")
@click.option("--steps", default=20000, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--segment-seconds", default=1.0, show_default=True)
@click.option("--lr", default=3e-4, show_default=True)
@click.option("--warmup-steps", default=500, show_default=True)
@click.option("--val-every", default=1000, show_default=True)
@click.option("--checkpoint-every", default=1000, show_default=True, help="A checkpoint every this many steps.")
@click.option("--checkpoint-every-minutes", "checkpoint_minutes", type=float, default=10.0, show_default=True,
              help="... and every this many minutes of wall time (0: never by time). Ctrl-C also checkpoints.")
@click.option("--log-every", default=50, show_default=True)
@click.option("--max-minutes", type=finite_float(min=0, min_open=True), default=None,
              help="Stop and save after this much wall time.")
@click.option("--device", default="auto", show_default=True, help="auto (a CUDA GPU when torch sees one), cpu, cuda.")
@click.option("--seed", default=0, show_default=True)
@click.option("--l1-weight", default=1.0, show_default=True, help="Weight of the waveform L1 loss.")
@click.option("--stft-weight", default=1.0, show_default=True, help="Weight of the multi-resolution STFT loss.")
@click.option("--mel-weight", default=1.0, show_default=True, help="Weight of the multi-scale log-mel loss.")
@click.option("--commitment-weight", default=0.25, show_default=True, help="Weight of the RVQ commitment loss.")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue from this checkpoint, with its run's settings unless given here (exactly, when the "
                   "number of ranks matches).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "auto"]), default="fp32", show_default=True,
              help="bf16 autocast for the convolutions; auto: bf16 where the GPU/CPU computes it natively.")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the encoder and decoder.")
@click.option("--workers", type=int, default=None,
              help="DataLoader processes per rank preparing batches ahead (default: 2 on CUDA, 0 on CPU).")
@click.option("--lr-scaling", type=click.Choice(["none", "linear", "sqrt"]), default="none", show_default=True,
              help="Scale --lr with the number of data-parallel ranks.")
@click.option("--upsample-init", type=click.Choice(["default", "icnr"]), default=None,
              help="Override the preset's decoder upsampler initialisation (icnr: no frame-rate comb at init).")
@click.option("--distill-from", "distill_from", type=click.Path(path_type=Path), default=None,
              help="A seed (GroupNorm) checkpoint: train its streamable student instead (the project's architecture, "
                   "matching weights copied), with the seed model as teacher. Uses --steps, --batch-size, "
                   "--segment-seconds, --lr, --log-every, --max-minutes, --seed.")
def train(data_dir: Path, out: Path, preset_name: str, activation: str | None, steps: int, batch_size: int,
          segment_seconds: float, lr: float, warmup_steps: int, val_every: int, checkpoint_every: int,
          checkpoint_minutes: float, log_every: int, max_minutes: float | None, device: str, seed: int,
          l1_weight: float, stft_weight: float,
          mel_weight: float, commitment_weight: float, resume: Path | None, precision: str, compile_model: bool,
          workers: int | None, lr_scaling: str, upsample_init: str | None, distill_from: Path | None) -> None:
    """Train APU-Codec on every audio file under DATA_DIR (any format libsndfile reads)."""
    require("torch", "train")
    if distill_from is not None:
        _distill(distill_from, data_dir, out, steps, batch_size, segment_seconds, lr, log_every, max_minutes, seed)
        return
    import dataclasses

    from apucodec.codec.losses import LossWeights
    from apucodec.codec.train import TrainSettings
    from apucodec.codec.train import train as run_training
    from apucodec.contract.config import preset
    from apucodec.errors import ApucodecError

    try:
        config = preset(preset_name)
    except ValueError as exc:
        raise ApucodecError(f"--preset: {exc}") from None
    if activation:
        config = dataclasses.replace(config, activation=activation)
    if upsample_init:
        config = dataclasses.replace(config, upsample_init=upsample_init)
    if workers is not None and workers < 0:
        raise ApucodecError(f"--workers {workers}: must be 0 or more")
    settings = TrainSettings(steps=steps, batch_size=batch_size, segment_seconds=segment_seconds, lr=lr,
                             warmup_steps=warmup_steps, val_every=val_every, checkpoint_every=checkpoint_every,
                             checkpoint_minutes=checkpoint_minutes or None,
                             log_every=log_every, max_minutes=max_minutes, device=device, seed=seed,
                             loss_weights=LossWeights(l1_weight, stft_weight, mel_weight, commitment_weight),
                             precision=precision, compile=compile_model, workers=workers, lr_scaling=lr_scaling)
    main_rank = os.environ.get("RANK", "0") == "0"
    if resume is not None:
        settings = _resumed(resume, settings, config, main_rank)
    with _progress_bar(steps if main_rank else 0) as progress:
        result = run_training(data_dir, out, config, settings, resume=resume, progress=progress,
                              log=lambda m: click.echo(m, err=True))
    if result.rank != 0:
        return
    if result.interrupted:
        click.echo(f"interrupted ({result.interrupted}) after {result.steps_done} steps of this run: checkpoint "
                   f"{out} written; continue with --resume {out}", err=True)
        sys.exit(130)
    last = result.validation[-1] if result.validation else {}
    click.echo(f"wrote {out}: {result.steps_done} steps in {result.seconds:.0f} s"
               + (f", validation SI-SDR {last['si_sdr']:.2f} dB, mel {last['mel']:.3f}" if last else ""))


# command-line parameter name -> TrainSettings' flat name (codec.resume_settings), where they differ
_SETTING_NAMES = {"compile_model": "compile", "checkpoint_minutes": "checkpoint_minutes"}
_MODEL_OPTIONS = ("preset_name", "activation", "upsample_init")


def _resumed(path: Path, settings: object, config: object, main_rank: bool) -> object:
    """The checkpoint's run settings under the ones given on this command line; prints what was kept/changed."""
    from apucodec.codec.resume_settings import flat, resumed_settings

    ctx = click.get_current_context()
    given = {name for name in ctx.params
             if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)}
    explicit = {_SETTING_NAMES.get(name, name) for name in given} & set(flat(settings))  # type: ignore[arg-type]
    asked_model = config if any(name in given for name in _MODEL_OPTIONS) else None
    settings, lines = resumed_settings(path, settings, explicit, asked_model)  # type: ignore[arg-type]
    if main_rank:
        for line in lines:
            click.echo(line, err=True)
    return settings


def _distill(seed_checkpoint: Path, data_dir: Path, out: Path, steps: int, batch_size: int, segment_seconds: float,
             lr: float, log_every: int, max_minutes: float | None, seed: int) -> None:
    from apucodec.codec.distill import DistillSettings, distill

    settings = DistillSettings(steps=steps, batch_size=batch_size, segment_seconds=segment_seconds, lr=lr,
                               log_every=log_every, max_minutes=max_minutes, seed=seed)
    result = distill(seed_checkpoint, data_dir, out, settings, log=lambda m: click.echo(m, err=True))
    first, last = result.losses[0], result.losses[-1]
    click.echo(f"wrote {out}: streamable student of {seed_checkpoint} ({result.copied} tensors copied), "
               f"{result.steps_done} steps in {result.seconds:.0f} s, distillation loss {first:.4f} -> {last:.4f}; "
               "export it for exact streaming")
