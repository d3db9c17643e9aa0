"""`apucodec train`: train a codec on a folder of audio."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from apucodec.extras import require


@contextlib.contextmanager
def _progress_bar(steps: int) -> Iterator[Callable[[int, str | None], None] | None]:
    """A progress bar on a terminal (loss and codebook usage as its status); plain log lines elsewhere."""
    if not sys.stderr.isatty():
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
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("ckpt.pt"), show_default=True,
              help="Checkpoint file to write (rewritten at every checkpoint).")
@click.option("--preset", "preset_name", default="default", show_default=True,
              help="Config preset: default (32.4M, the spec), small, tiny, seed.")
@click.option("--activation", type=click.Choice(["gelu", "leaky_relu"]), default=None,
              help="Override the preset's activation.")
@click.option("--steps", default=20000, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--segment-seconds", default=1.0, show_default=True)
@click.option("--lr", default=3e-4, show_default=True)
@click.option("--warmup-steps", default=500, show_default=True)
@click.option("--val-every", default=1000, show_default=True)
@click.option("--checkpoint-every", default=1000, show_default=True)
@click.option("--log-every", default=50, show_default=True)
@click.option("--max-minutes", type=float, default=None, help="Stop and save after this much wall time.")
@click.option("--device", default="auto", show_default=True, help="auto (a CUDA GPU when torch sees one), cpu, cuda.")
@click.option("--seed", default=0, show_default=True)
@click.option("--l1-weight", default=1.0, show_default=True, help="Weight of the waveform L1 loss.")
@click.option("--stft-weight", default=1.0, show_default=True, help="Weight of the multi-resolution STFT loss.")
@click.option("--mel-weight", default=1.0, show_default=True, help="Weight of the multi-scale log-mel loss.")
@click.option("--commitment-weight", default=0.25, show_default=True, help="Weight of the RVQ commitment loss.")
@click.option("--resume", type=click.Path(path_type=Path), default=None, help="Continue from this checkpoint.")
def train(data_dir: Path, out: Path, preset_name: str, activation: str | None, steps: int, batch_size: int,
          segment_seconds: float, lr: float, warmup_steps: int, val_every: int, checkpoint_every: int,
          log_every: int, max_minutes: float | None, device: str, seed: int, l1_weight: float, stft_weight: float,
          mel_weight: float, commitment_weight: float, resume: Path | None) -> None:
    """Train APU-Codec on every audio file under DATA_DIR (any format libsndfile reads)."""
    require("torch", "train")
    import dataclasses

    from apucodec.codec.config import preset
    from apucodec.codec.losses import LossWeights
    from apucodec.codec.train import TrainSettings
    from apucodec.codec.train import train as run_training
    from apucodec.errors import ApucodecError

    try:
        config = preset(preset_name)
    except ValueError as exc:
        raise ApucodecError(f"--preset: {exc}") from None
    if activation:
        config = dataclasses.replace(config, activation=activation)
    settings = TrainSettings(steps=steps, batch_size=batch_size, segment_seconds=segment_seconds, lr=lr,
                             warmup_steps=warmup_steps, val_every=val_every, checkpoint_every=checkpoint_every,
                             log_every=log_every, max_minutes=max_minutes, device=device, seed=seed,
                             loss_weights=LossWeights(l1_weight, stft_weight, mel_weight, commitment_weight))
    with _progress_bar(steps) as progress:
        result = run_training(data_dir, out, config, settings, resume=resume, progress=progress,
                              log=lambda m: click.echo(m, err=True))
    last = result.validation[-1] if result.validation else {}
    click.echo(f"wrote {out}: {result.steps_done} steps in {result.seconds:.0f} s"
               + (f", validation SI-SDR {last['si_sdr']:.2f} dB, mel {last['mel']:.3f}" if last else ""))
