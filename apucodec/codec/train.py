"""The training loop: AdamW, warm-up + cosine schedule, gradient clipping, periodic validation and checkpoints.

The loop reports what tells a codec's health at a glance: the loss terms, and how many codes each codebook
actually uses (perplexity; ~codebook_size is ideal, ~1 means the codebook collapsed).

Under torchrun it trains data-parallel (codec.distributed): DDP averages the gradients, the quantizer sums its EMA
statistics over ranks, each rank reads its own shard of every epoch, and only rank 0 validates, logs and writes
checkpoints. A checkpoint holds the model, the optimizer, the step, the elapsed time and every rank's random
generators, so a resumed run continues the interrupted one exactly (same world size and device).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from apucodec.codec import distributed
from apucodec.codec.checkpoint import load_checkpoint, save_checkpoint
from apucodec.codec.config import CodecConfig
from apucodec.codec.data import SegmentSource
from apucodec.codec.losses import LossWeights, reconstruction_losses, total_loss
from apucodec.codec.model import APUCodec
from apucodec.codec.sampling import make_loader
from apucodec.codec.step import apply_gradients, forward_losses, resolve_precision
from apucodec.codec.train_state import capture_rng, restore_rng
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
    precision: str = "fp32"         # fp32 | bf16 | auto (bf16 where the device computes it natively)
    compile: bool = False           # torch.compile the encoder and decoder
    workers: int | None = None      # DataLoader worker processes per rank; None: 2 on CUDA, 0 on CPU
    lr_scaling: str = "none"        # none | linear | sqrt: scale lr with the number of data-parallel ranks


@dataclass
class TrainResult:
    steps_done: int
    seconds: float
    history: list[dict[str, float]]       # one entry per logged step
    validation: list[dict[str, float]]    # one entry per validation pass (rank 0 only)
    model: APUCodec | None = None         # the trained model (this rank's copy)
    rank: int = 0
    world_size: int = 1


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
    a short "loss, codebook usage" text at logging steps, else None) so a CLI can drive a progress bar. Launched by
    torchrun, every rank calls this; only rank 0 logs, reports progress and writes `out`.
    """
    settings = settings or TrainSettings()
    group, device_name = distributed.setup(settings.device)
    finished = False
    try:
        if not group.is_main:
            log, progress = (lambda msg: None), None
        result = _train(Path(data_dir), Path(out), config, settings, resume, group, device_name,
                        log or (lambda msg: print(msg, file=sys.stderr, flush=True)), progress)
        finished = True
        return result
    finally:
        distributed.teardown(group, finished)


def _peak_lr(settings: TrainSettings, world_size: int) -> float:
    scale = {"none": 1.0, "linear": float(world_size), "sqrt": math.sqrt(world_size)}
    if settings.lr_scaling not in scale:
        raise ApucodecError(f"lr scaling must be one of {sorted(scale)}, not {settings.lr_scaling!r}")
    return settings.lr * scale[settings.lr_scaling]


def _workers(settings: TrainSettings, device: torch.device, group: distributed.Group) -> int:
    if settings.workers is not None:
        return settings.workers
    if device.type != "cuda":
        return 0  # on a CPU the model's threads need the cores more than the (cheap) segment slicing does
    per_rank = (os.cpu_count() or 2) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(2, per_rank - 1))


def _train(data_dir: Path, out: Path, config: CodecConfig | None, settings: TrainSettings,
           resume: str | Path | None, group: distributed.Group, device_name: str,
           log: Callable[[str], None], progress: Callable[[int, str | None], None] | None) -> TrainResult:
    if out.is_dir():
        raise ApucodecError(f"{out}: is a directory, expected a checkpoint file path")
    device = pick_device(device_name)
    precision = resolve_precision(settings.precision, device)
    torch.manual_seed(settings.seed)

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
    peak_lr = _peak_lr(settings, group.world_size)
    log(f"training {model.param_count:,} parameters on {len(source.clips)} files ({source.seconds:.1f} s of audio), "
        f"device {device}, {precision}, segments {segment} samples, batch {settings.batch_size}")
    if group.world_size > 1:
        log(f"data parallel: {group.world_size} ranks ({group.backend}), effective batch "
            f"{settings.batch_size * group.world_size} ({group.world_size} x {settings.batch_size}), "
            f"peak lr {peak_lr:g} (lr scaling {settings.lr_scaling})")

    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr, betas=(0.8, 0.99),
                                  weight_decay=settings.weight_decay)
    if "optimizer" in extra:
        optimizer.load_state_dict(extra["optimizer"])
    _restore_rng_of_rank(extra.get("rng"), group, device, settings.seed, start_step, log)
    if settings.compile:
        model.encoder.compile()
        model.decoder.compile()
    net: torch.nn.Module = model
    if group.world_size > 1:
        # Buffers (the codebooks) are kept identical by the quantizer itself; DDP must not overwrite them with rank
        # 0's copy every step, which would hide a desynchronisation instead of preventing it.
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=False)

    elapsed_before = float(extra.get("elapsed_seconds", 0.0))
    started = time.monotonic()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - started

    def checkpoint(step: int) -> None:
        rng_states = distributed.gather_objects(capture_rng(device))  # a collective: every rank takes part
        if group.is_main:
            save_checkpoint(out, model, step, optimizer=optimizer.state_dict(), rng=rng_states,
                            world_size=group.world_size, elapsed_seconds=elapsed(),
                            schedule={"kind": "warmup_cosine", "peak_lr": peak_lr},
                            settings={k: v for k, v in asdict(settings).items() if k != "loss_weights"})

    loader = make_loader(source, settings.batch_size, seed=settings.seed, start=start_step, end=settings.steps,
                         rank=group.rank, world_size=group.world_size, workers=_workers(settings, device, group),
                         pin_memory=device.type == "cuda")
    history: list[dict[str, float]] = []
    validation: list[dict[str, float]] = []
    step = start_step
    for step, cpu_batch in zip(range(start_step, settings.steps), loader, strict=False):
        run_time = _agreed(elapsed()) if settings.max_minutes else 0.0
        lr = peak_lr * lr_factor(step, settings, run_time)
        for group_params in optimizer.param_groups:
            group_params["lr"] = lr
        batch = cpu_batch.to(device, non_blocking=True)
        result = forward_losses(net, batch, config.sample_rate, settings.loss_weights, precision)
        loss, parts = result.loss, result.parts
        if not _finite_everywhere(loss):
            raise ApucodecError(f"training diverged at step {step} (loss {float(loss)}); lower --lr")
        apply_gradients(net, optimizer, loss, settings.grad_clip)

        done = step + 1
        perplexity = result.output.perplexity
        if done % settings.log_every == 0 or done == settings.steps or done == start_step + 1:
            entry = {"step": done, "loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                     "perplexity_min": float(perplexity.min()), "perplexity_mean": float(perplexity.mean()),
                     "lr": lr, "seconds": elapsed()}
            history.append(entry)
            ppl = " ".join(f"{p:.0f}" for p in perplexity.tolist())
            log(f"step {done}/{settings.steps} loss {entry['loss']:.3f} (l1 {entry['l1']:.4f} "
                f"stft {entry['stft']:.3f} mel {entry['mel']:.3f} commit {entry['commitment']:.4f}) "
                f"perplexity [{ppl}] {entry['seconds']:.0f}s")
            if progress is not None:
                progress(done, f"loss {entry['loss']:.3f} usage {entry['perplexity_min']:.0f}-"
                               f"{perplexity.max():.0f}/{config.codebook_size}")
        elif progress is not None:
            progress(done, None)
        if group.is_main and (done % settings.val_every == 0 or done == settings.steps):
            metrics = {"step": done, **validate(model, val_segments, device, config.sample_rate,
                                                settings.loss_weights)}
            validation.append(metrics)
            log(f"validation @ {done}: loss {metrics['loss']:.3f}, SI-SDR {metrics['si_sdr']:.2f} dB, "
                f"mel {metrics['mel']:.3f}, quantization error {metrics['quant_error']:.3f}")
        if done % settings.checkpoint_every == 0:
            checkpoint(done)
        if settings.max_minutes is not None and run_time > settings.max_minutes * 60:
            log(f"time budget of {settings.max_minutes} min reached at step {done}")
            break
    final = step + 1 if settings.steps > start_step else start_step
    if group.is_main and (not validation or validation[-1]["step"] != final):
        validation.append({"step": final, **validate(model, val_segments, device, config.sample_rate,
                                                     settings.loss_weights)})
    checkpoint(final)
    return TrainResult(final - start_step, elapsed() - elapsed_before, history, validation, model,
                       group.rank, group.world_size)


def _agreed(seconds: float) -> float:
    """Rank 0's clock, so a wall-time budget changes the learning rate and stops training on all ranks alike."""
    return float(distributed.broadcast_object(seconds))


def _finite_everywhere(loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every rank (all ranks must stop together, or the others wait forever)."""
    bad = (~torch.isfinite(loss.detach())).float().reshape(1)
    return float(distributed.all_reduce_sum_(bad)) == 0.0


def _restore_rng_of_rank(states: Any, group: distributed.Group, device: torch.device, seed: int, step: int,
                         log: Callable[[str], None]) -> None:
    """This rank's generators from a checkpoint; else a seed that differs per rank (quantizer dropout must not draw
    the same pattern on every rank) but keeps a single process exactly as seeded."""
    if isinstance(states, list) and len(states) == group.world_size:
        restore_rng(states[group.rank], device)
        return
    if states is not None:
        log(f"resuming on {group.world_size} ranks from a checkpoint of {len(states)}: random streams reseeded "
            "(the run continues, but not bit for bit)")
    if states is not None or group.world_size > 1:
        torch.manual_seed(seed + 1_000_003 * step + group.rank)
