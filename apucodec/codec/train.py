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

import torch

from apucodec.codec import distributed
from apucodec.codec.checkpoint import load_checkpoint, save_checkpoint
from apucodec.codec.data import SegmentSource
from apucodec.codec.losses import LossWeights
from apucodec.codec.model import APUCodec
from apucodec.codec.sampling import make_loader
from apucodec.codec.step import apply_gradients, forward_losses, resolve_precision
from apucodec.codec.train_pace import Pace, cpu_warning
from apucodec.codec.train_state import capture_rng, restore_rng
from apucodec.codec.train_stop import CheckpointClock, StopRequests, agree
from apucodec.codec.validation import validate
from apucodec.contract.config import CodecConfig
from apucodec.errors import ApucodecError


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
    checkpoint_minutes: float | None = 10.0  # also a checkpoint every this many minutes of wall time (None: never)
    report_seconds: float = 60.0             # a steps/s + ETA line after steps 1 and 2, then this often
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
    interrupted: str | None = None        # "SIGINT"/"SIGTERM" when a signal stopped the run (checkpoint written)


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
    net = distributed.wrap(model, device) if group.world_size > 1 else model

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
                            settings=asdict(settings))

    loader = make_loader(source, settings.batch_size, seed=settings.seed, start=start_step, end=settings.steps,
                         rank=group.rank, world_size=group.world_size, workers=_workers(settings, device, group),
                         pin_memory=device.type == "cuda")
    history: list[dict[str, float]] = []
    validation: list[dict[str, float]] = []
    budget = settings.max_minutes * 60 - elapsed_before if settings.max_minutes else None
    pace = Pace(start_step, settings.steps, settings.report_seconds, budget_seconds=budget)
    clock = CheckpointClock(settings.checkpoint_minutes)
    cpu_checked = device.type != "cpu" or (settings.max_minutes or 61) <= 60
    step, interrupted = start_step, None
    with StopRequests(log) as stops:
        for step, cpu_batch in zip(range(start_step, settings.steps), loader, strict=False):
            run_time = _agreed(elapsed()) if settings.max_minutes else 0.0
            lr = peak_lr * lr_factor(step, settings, run_time)
            for group_params in optimizer.param_groups:
                group_params["lr"] = lr
            batch = cpu_batch.to(device, non_blocking=True)
            result = forward_losses(net, batch, config.sample_rate, settings.loss_weights, precision)
            if not _finite_everywhere(result.loss):
                raise ApucodecError(f"training diverged at step {step} (loss {float(result.loss)}); lower --lr")
            apply_gradients(net, optimizer, result.loss, settings.grad_clip)

            done = step + 1
            pace.step_done(done)
            status = None
            if done % settings.log_every == 0 or done == settings.steps or done == start_step + 1:
                status = _log_step(result, done, lr, elapsed(), settings, config, history, log, pace)
            elif done < settings.steps and pace.report_due():
                log(pace.line())
            if progress is not None:
                progress(done, status)
            if not cpu_checked and done - start_step >= 2:
                cpu_checked = True
                warning = cpu_warning(config, pace.seconds_per_step(), settings.steps - start_step,
                                      settings.batch_size)
                if warning:
                    log(warning)
            if group.is_main and (done % settings.val_every == 0 or done == settings.steps):
                metrics = {"step": done, **validate(model, val_segments, device, config.sample_rate,
                                                    settings.loss_weights)}
                validation.append(metrics)
                log(f"validation @ {done}: loss {metrics['loss']:.3f}, SI-SDR {metrics['si_sdr']:.2f} dB, "
                    f"mel {metrics['mel']:.3f}, quantization error {metrics['quant_error']:.3f}")
            stop, timed = agree(stops.requested is not None, group.is_main and clock.due(), device)
            if done % settings.checkpoint_every == 0 or timed or stop:
                checkpoint(done)
                clock.written()
            if stop:
                interrupted = stops.requested or "stop"
                log(f"stopped at step {done}/{settings.steps}: checkpoint written to {out}; "
                    f"continue with --resume {out}")
                break
            if settings.max_minutes is not None and run_time > settings.max_minutes * 60:
                log(f"time budget of {settings.max_minutes} min reached at step {done}")
                break
    final = step + 1 if settings.steps > start_step else start_step
    if interrupted is None:
        if group.is_main and (not validation or validation[-1]["step"] != final):
            validation.append({"step": final, **validate(model, val_segments, device, config.sample_rate,
                                                         settings.loss_weights)})
        checkpoint(final)
    return TrainResult(final - start_step, elapsed() - elapsed_before, history, validation, model,
                       group.rank, group.world_size, interrupted)


def _log_step(result: Any, done: int, lr: float, seconds: float, settings: TrainSettings, config: CodecConfig,
              history: list[dict[str, float]], log: Callable[[str], None], pace: Pace) -> str:
    """The periodic loss line (with steps/s and ETA while steps remain); returns the progress bar's status."""
    perplexity = result.output.perplexity
    entry = {"step": done, "loss": float(result.loss.detach()),
             **{k: float(v.detach()) for k, v in result.parts.items()},
             "perplexity_min": float(perplexity.min()), "perplexity_mean": float(perplexity.mean()),
             "lr": lr, "seconds": seconds}
    history.append(entry)
    ppl = " ".join(f"{p:.0f}" for p in perplexity.tolist())
    timing = f"; {pace.line().split(': ', 1)[1]}" if done < settings.steps else ""
    log(f"step {done}/{settings.steps} loss {entry['loss']:.3f} (l1 {entry['l1']:.4f} "
        f"stft {entry['stft']:.3f} mel {entry['mel']:.3f} commit {entry['commitment']:.4f}) "
        f"perplexity [{ppl}] {seconds:.0f}s{timing}")
    return f"loss {entry['loss']:.3f} usage {entry['perplexity_min']:.0f}-{perplexity.max():.0f}/{config.codebook_size}"


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
