"""One optimisation step, and the precision it runs in: shared by `train` and benchmarks/train_speed.py, so the
benchmark times exactly the step that training runs.

bf16 autocast runs the convolutions in bfloat16 where the hardware computes it natively (CUDA GPUs with bf16; x86
CPUs with AVX-512 BF16 or AMX, read from /proc/cpuinfo) and keeps float32 elsewhere: the quantizer disables autocast
for itself, and the losses are computed on the float32 copy of the output, since log-spectra of bf16 audio (8 bits of
mantissa) would be noise below -48 dB.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from apucodec.codec.losses import LossWeights, reconstruction_losses, total_loss
from apucodec.codec.model import CodecOutput

PRECISIONS = ("fp32", "bf16", "auto")


@functools.cache
def cpu_has_bf16() -> bool:
    """True when this x86 CPU computes bf16 dot products natively (AVX-512 BF16 or AMX-BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def bf16_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def resolve_precision(name: str, device: torch.device) -> str:
    """"auto" -> "bf16" where native, else "fp32"; an explicit "bf16" is honoured (emulated if need be)."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {name!r}")
    if name == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class StepResult:
    loss: torch.Tensor
    parts: dict[str, torch.Tensor]
    output: CodecOutput


def forward_losses(net: torch.nn.Module, batch: torch.Tensor, sample_rate: int, weights: LossWeights,
                   precision: str) -> StepResult:
    with autocast(batch.device, precision):
        output = net(batch)
    parts = reconstruction_losses(batch, output.audio.float(), sample_rate)
    parts["commitment"] = output.commitment_loss.float()
    return StepResult(total_loss(parts, weights), parts, output)


def apply_gradients(net: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                    grad_clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    optimizer.step()
