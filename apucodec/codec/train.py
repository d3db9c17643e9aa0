"""The training loop: AdamW, warm-up + cosine schedule, gradient clipping, periodic validation and checkpoints.

The loop reports what tells a codec's health at a glance: the loss terms, and how many codes each codebook
actually uses (perplexity; ~codebook_size is ideal, ~1 means the codebook collapsed).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from apucodec.codec.checkpoint import load_checkpoint, save_checkpoint
from apucodec.codec.config import CodecConfig
from apucodec.codec.data import SegmentSource
from apucodec.codec.losses import LossWeights, reconstruction_losses, total_loss
from apucodec.codec.model import APUCodec
from apucodec.errors import ApucodecError
from apucodec.metrics import mel_distance, si_sdr


@dataclass
class TrainSettings:
    steps: int = 20000
    batch_size: int = 16
    segment_seconds: float = 1.0
    lr: float = 3e-4
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    weight_decay: float = 1e-4
    device: str = "auto"
    val_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 50
    seed: int = 0
    max_minutes: float | None = None  # stop (and save) after this wall time, e.g. for a fixed compute budget
    loss_weights: LossWeights = field(default_factory=LossWeights)


@dataclass
class TrainResult:
    steps_done: int
    seconds: float
    history: list[dict[str, float]]       # one entry per logged step
    validation: list[dict[str, float]]    # one entry per validation pass


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ApucodecError(f"--device {name}: torch sees no CUDA GPU on this machine")
    return torch.device(name)


def lr_factor(step: int, settings: TrainSettings, elapsed_s: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio of the peak.

    With a wall-time budget (max_minutes) the decay follows whichever runs out first, steps or time, so a run cut
    short by its budget still ends at a low learning rate instead of stopping mid-plateau.
    """
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    if settings.max_minutes:
        progress = max(progress, elapsed_s / (settings.max_minutes * 60))
    progress = min(1.0, progress)
    return settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def validate(model: APUCodec, segments: np.ndarray, device: torch.device, sample_rate: int,
             weights: LossWeights | None = None) -> dict[str, float]:
    """On held-out segments with every codebook: reconstruction loss, SI-SDR, mel distance, and the relative
    quantization error ||z - q(z)||^2 / ||z||^2 (the number that stays flat when codebooks do not learn)."""
    weights = weights or LossWeights()
    was_training = model.training
    model.eval()
    sdrs, mels, q_err, losses = [], [], [], []
    for start in range(0, len(segments), 8):
        x = torch.from_numpy(segments[start:start + 8]).to(device)
        out = model(x)
        err = (out.latent - out.quantized).pow(2).sum() / out.latent.pow(2).sum().clamp_min(1e-12)
        q_err.append(float(err))
        parts = reconstruction_losses(x, out.audio, sample_rate)
        parts["commitment"] = out.commitment_loss
        losses.append(float(total_loss(parts, weights)))
        for ref, est in zip(x.cpu().numpy(), out.audio.cpu().numpy(), strict=True):
            sdrs.append(si_sdr(ref, est))
            mels.append(mel_distance(ref, est, sample_rate))
    model.train(was_training)
    return {"loss": float(np.mean(losses)), "si_sdr": float(np.mean(sdrs)), "mel": float(np.mean(mels)),
            "quant_error": float(np.mean(q_err))}


def train(data_dir: str | Path, out: str | Path, config: CodecConfig | None = None,
          settings: TrainSettings | None = None, *, resume: str | Path | None = None,
          log: Callable[[str], None] | None = None,
          progress: Callable[[int, str | None], None] | None = None) -> TrainResult:
    """Train (or resume) a codec on the audio under `data_dir`, writing checkpoints to `out`.

    `log` receives the periodic loss/validation lines; `progress(step, status)` is called after every step (status:
    a short "loss, codebook usage" text at logging steps, else None) so a CLI can drive a progress bar.
    """
    settings = settings or TrainSettings()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(out)
    if out.is_dir():
        raise ApucodecError(f"{out}: is a directory, expected a checkpoint file path")
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)

    start_step, extra = 0, {}
    if resume is not None:
        loaded = load_checkpoint(resume)
        model, start_step, extra = loaded.model, loaded.step, loaded.extra
        config = model.config
    else:
        model = APUCodec(config or CodecConfig())
    model.to(device).train()

    segment = int(round(settings.segment_seconds * config.sample_rate / config.hop_length)) * config.hop_length
    if segment <= 0:
        raise ApucodecError(f"--segment-seconds {settings.segment_seconds}: shorter than one codec frame")
    source = SegmentSource(data_dir, segment, sample_rate=config.sample_rate, log=log)
    val_segments = source.validation_segments()
    log(f"training {model.param_count:,} parameters on {len(source.clips)} files ({source.seconds:.1f} s of audio), "
        f"device {device}, segments {segment} samples, batch {settings.batch_size}")

    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.8, 0.99),
                                  weight_decay=settings.weight_decay)
    if "optimizer" in extra:
        optimizer.load_state_dict(extra["optimizer"])

    def checkpoint(step: int) -> None:
        save_checkpoint(out, model, step, optimizer=optimizer.state_dict(),
                        settings={k: v for k, v in asdict(settings).items() if k != "loss_weights"})

    history: list[dict[str, float]] = []
    validation: list[dict[str, float]] = []
    started = time.monotonic()
    step = start_step
    for step in range(start_step, settings.steps):
        lr = settings.lr * lr_factor(step, settings, time.monotonic() - started)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = torch.from_numpy(source.batch(settings.batch_size, rng)).to(device)
        result = model(batch)
        parts = reconstruction_losses(batch, result.audio, config.sample_rate)
        parts["commitment"] = result.commitment_loss
        loss = total_loss(parts, settings.loss_weights)
        if not torch.isfinite(loss):
            raise ApucodecError(f"training diverged at step {step} (loss {float(loss)}); lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()

        done = step + 1
        if done % settings.log_every == 0 or done == settings.steps or done == start_step + 1:
            entry = {"step": done, "loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                     "perplexity_min": float(result.perplexity.min()),
                     "perplexity_mean": float(result.perplexity.mean()),
                     "lr": lr, "seconds": time.monotonic() - started}
            history.append(entry)
            ppl = " ".join(f"{p:.0f}" for p in result.perplexity.tolist())
            line = (f"step {done}/{settings.steps} loss {entry['loss']:.3f} (l1 {entry['l1']:.4f} "
                    f"stft {entry['stft']:.3f} mel {entry['mel']:.3f} commit {entry['commitment']:.4f}) "
                    f"perplexity [{ppl}] {entry['seconds']:.0f}s")
            log(line)
            if progress is not None:
                progress(done, f"loss {entry['loss']:.3f} usage {entry['perplexity_min']:.0f}-"
                               f"{result.perplexity.max():.0f}/{config.codebook_size}")
        elif progress is not None:
            progress(done, None)
        if done % settings.val_every == 0 or done == settings.steps:
            metrics = {"step": done, **validate(model, val_segments, device, config.sample_rate,
                                                                settings.loss_weights)}
            validation.append(metrics)
            log(f"validation @ {done}: loss {metrics['loss']:.3f}, SI-SDR {metrics['si_sdr']:.2f} dB, "
                f"mel {metrics['mel']:.3f}, quantization error {metrics['quant_error']:.3f}")
        if done % settings.checkpoint_every == 0:
            checkpoint(done)
        if settings.max_minutes is not None and time.monotonic() - started > settings.max_minutes * 60:
            log(f"time budget of {settings.max_minutes} min reached at step {done}")
            break
    final = step + 1 if settings.steps > start_step else start_step
    if not validation or validation[-1]["step"] != final:
        validation.append({"step": final, **validate(model, val_segments, device, config.sample_rate,
                                                                settings.loss_weights)})
    checkpoint(final)
    return TrainResult(final - start_step, time.monotonic() - started, history, validation)
