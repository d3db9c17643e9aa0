"""`apucodec train --distill-from SEED.pt`: a seed (GroupNorm) model's streamable student, taught by the seed model.

A pooled-norm model can only be approximated in a stream (apucodec/export/running_norm.py). The way to exact
streaming is a model without pooled statistics: the project's own architecture (weight-normed convolutions, no
norm layer) at the seed's widths. The student starts from every teacher tensor whose name and shape match (all
convolutions, whose weight-norm parametrization is set so the effective weight equals the teacher's, and the
codebooks), so it starts close; it is then fine-tuned on the user's audio to reproduce the teacher's output:

    loss = L1(student latent, teacher latent) / mean|teacher latent|         (the codes stay the teacher's)
         + reconstruction losses(teacher audio -> student audio)            (L1, multi-resolution STFT, log-mel)
         + commitment

The teacher runs frozen in eval mode (its GroupNorm statistics over each training segment, as it would offline).
The codebooks are the teacher's, kept fixed, so codes of teacher and student mean the same. The result is an
ordinary checkpoint: `apucodec export` gives it exact streaming (80 dB parity) like any of the project's models.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from apucodec.codec.checkpoint import load_checkpoint, save_checkpoint
from apucodec.codec.data import SegmentSource
from apucodec.codec.losses import LossWeights, reconstruction_losses, total_loss
from apucodec.codec.model import APUCodec
from apucodec.codec.sampling import make_loader
from apucodec.errors import ApucodecError


@dataclass
class DistillSettings:
    steps: int = 2000
    batch_size: int = 8
    segment_seconds: float = 1.0
    lr: float = 1e-4
    latent_weight: float = 1.0
    seed: int = 0
    log_every: int = 50
    max_minutes: float | None = None
    loss_weights: LossWeights = field(default_factory=LossWeights)


@dataclass
class DistillResult:
    copied: int
    skipped: list[str]
    losses: list[float]
    steps_done: int
    seconds: float


def student_of(teacher: APUCodec) -> tuple[APUCodec, int, list[str]]:
    """The streamable student (norm="weight", the teacher's widths), every matching tensor copied; (student, how
    many tensors were copied, teacher tensors with no place in the student: the GroupNorm affines)."""
    student = APUCodec(dataclasses.replace(teacher.config, norm="weight"))
    modules = dict(student.named_modules())
    copied, skipped = 0, []
    with torch.no_grad():
        for name, value in teacher.state_dict().items():
            owner, _, attr = name.rpartition(".")
            target = modules.get(owner)
            current = getattr(target, attr, None) if target is not None else None
            if not isinstance(current, torch.Tensor) or current.shape != value.shape:
                skipped.append(name)
                continue
            if attr == "weight" and hasattr(target, "parametrizations"):
                setattr(target, attr, value.clone())  # weight norm's right_inverse: g = |w|, v = w
            else:
                current.copy_(value)
            copied += 1
    return student, copied, skipped


def distill_losses(student: APUCodec, teacher: APUCodec, batch: torch.Tensor, sample_rate: int,
                   settings: DistillSettings) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    with torch.no_grad():
        target = teacher(batch)
    out = student(batch)
    scale = target.latent.abs().mean().clamp_min(1e-6)
    parts = reconstruction_losses(target.audio, out.audio, sample_rate)
    parts["commitment"] = out.commitment_loss
    latent = (out.latent - target.latent).abs().mean() / scale
    return total_loss(parts, settings.loss_weights) + settings.latent_weight * latent, {**parts, "latent": latent}


def distill(seed_checkpoint: str | Path, data_dir: str | Path, out: str | Path, settings: DistillSettings,
            log: Callable[[str], None] = print) -> DistillResult:
    """Fine-tune a streamable student of `seed_checkpoint` on the audio in `data_dir`; write it to `out`."""
    teacher = load_checkpoint(seed_checkpoint).model
    if teacher.config.norm != "group":
        raise ApucodecError(f"{seed_checkpoint}: --distill-from takes a pooled-norm (GroupNorm, seed) model; this one "
                            f"(norm={teacher.config.norm}) already streams exactly")
    teacher.eval().requires_grad_(False)
    torch.manual_seed(settings.seed)
    student, copied, skipped = student_of(teacher)
    student.quantizer.requires_grad_(False)
    student.train()
    student.quantizer.eval()  # the teacher's codebooks, kept: codes mean what they meant
    cfg = student.config
    segment = max(1, round(settings.segment_seconds * cfg.sample_rate / cfg.hop_length)) * cfg.hop_length
    source = SegmentSource(data_dir, segment, sample_rate=cfg.sample_rate, log=log)
    log(f"distilling {seed_checkpoint}: student {student.param_count:,} parameters, {copied} tensors copied, "
        f"{len(skipped)} without a place in the student (GroupNorm affines); {len(source.clips)} files")
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, betas=(0.8, 0.99))
    loader = make_loader(source, settings.batch_size, seed=settings.seed, start=0, end=settings.steps)
    losses: list[float] = []
    started = time.monotonic()
    step = 0
    for step, batch in enumerate(loader, start=1):
        loss, parts = distill_losses(student, teacher, batch, cfg.sample_rate, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if step % settings.log_every == 0 or step == 1:
            log(f"step {step}/{settings.steps} distillation loss {losses[-1]:.4f} (latent "
                f"{float(parts['latent'].detach()):.4f}, l1 {float(parts['l1'].detach()):.4f})")
        if settings.max_minutes and time.monotonic() - started > 60 * settings.max_minutes:
            log(f"time budget of {settings.max_minutes} min reached at step {step}")
            break
    student.eval()
    save_checkpoint(out, student, step, distilled_from=Path(seed_checkpoint).name, losses=losses)
    return DistillResult(copied, skipped, losses, step, time.monotonic() - started)
