"""How fast training goes and when it will end, told from the first steps.

A new user's first `apucodec train ./wavs` on a CPU used to run the 32.4M default preset for 20,000 steps (about
12 days there) without a word about time. `Pace` measures steps/s from the first steps on and produces a progress
line (steps/s, ETA) after steps 1 and 2 and then every `report_seconds` of wall time, whatever --log-every says.
`cpu_warning` turns a CPU estimate that runs to hours into one warning naming a preset that fits, scaled by the
presets' convolution FLOPs (counted on the meta device, so nothing is computed or allocated).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import torch

from apucodec.contract.config import PRESETS, CodecConfig

# presets a warning may suggest (the seed preset is the original project's format, not a speed choice)
SUGGESTED_PRESETS = ("default", "small", "tiny")
FITS_SECONDS = 3600.0  # "fits": the whole run in at most an hour


def format_duration(seconds: float) -> str:
    """A duration as a person would say it: '45 s', '12 min', '3.4 h', '12 days'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


class Pace:
    """Steps/s and ETA of a run from `start_step` to `total_steps`.

    The first step carries one-off costs (allocations, codebook initialisation from data), so once two steps are
    done the rate is measured from the end of the first one; until then it is the first step's own time.
    """

    def __init__(self, start_step: int, total_steps: int, report_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, budget_seconds: float | None = None) -> None:
        self.start_step, self.total_steps = start_step, total_steps
        self.budget_seconds = budget_seconds  # a wall-time budget left (--max-minutes) caps the ETA
        self.report_seconds = report_seconds
        self._clock = clock
        self._began = clock()
        self._after_first: float | None = None
        self._last_report = self._began
        self.done = start_step

    def step_done(self, done: int) -> None:
        self.done = done
        if done == self.start_step + 1:
            self._after_first = self._clock()

    def seconds_per_step(self) -> float:
        now = self._clock()
        if self._after_first is not None and self.done > self.start_step + 1:
            return (now - self._after_first) / (self.done - self.start_step - 1)
        return (now - self._began) / max(1, self.done - self.start_step)

    def eta_seconds(self) -> float:
        eta = self.seconds_per_step() * max(0, self.total_steps - self.done)
        if self.budget_seconds is not None:
            eta = min(eta, max(0.0, self.budget_seconds - (self._clock() - self._began)))
        return eta

    def report_due(self) -> bool:
        """After the first two steps, then every report_seconds (the caller logs `line()` when True)."""
        if self.done - self.start_step <= 2:
            return True
        return self._clock() - self._last_report >= self.report_seconds

    def line(self) -> str:
        self._last_report = self._clock()
        per_step = self.seconds_per_step()
        rate = f"{1 / per_step:.2f} steps/s" if per_step < 1 else f"{per_step:.1f} s/step"
        return f"step {self.done}/{self.total_steps}: {rate}, ETA {format_duration(self.eta_seconds())}"


@functools.cache
def flops_per_sample(config: CodecConfig) -> float:
    """Encoder + decoder FLOPs per audio sample, counted on the meta device (no memory, no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    from apucodec.codec.model import APUCodec

    samples = config.hop_length * 8
    with torch.device("meta"):
        model = APUCodec(config)
        audio = torch.zeros(1, 1, samples)
        latent = torch.zeros(1, config.latent_dim, 8)
    with FlopCounterMode(display=False) as counter:
        model.encoder(audio)
        model.decoder(latent)
    return counter.get_total_flops() / samples


def cpu_warning(config: CodecConfig, seconds_per_step: float, remaining_steps: int,
                batch_size: int) -> str | None:
    """One warning when a CPU run's estimate exceeds an hour, naming the largest preset estimated to fit in one
    (training time scales with the convolutions' FLOPs; the losses' STFTs make small presets a little slower than
    that, hence 'about'), or, when none does, the step count that would."""
    total = seconds_per_step * remaining_steps
    if total <= FITS_SECONDS:
        return None
    here = flops_per_sample(config)
    options = []
    for name in SUGGESTED_PRESETS:
        ratio = flops_per_sample(PRESETS[name]) / here
        if ratio < 1:
            options.append((ratio * total, name))
    fitting = [(t, name) for t, name in options if t <= FITS_SECONDS]
    head = (f"warning: on the CPU this run takes about {format_duration(total)} ({seconds_per_step:.1f} s/step, "
            f"{remaining_steps:,} steps, batch {batch_size})")
    if fitting:
        estimate, name = max(fitting)
        return f"{head}; --preset {name} would take about {format_duration(estimate)}, or train on a GPU"
    steps = max(1, int(FITS_SECONDS / seconds_per_step))
    if options:
        estimate, name = min(options)
        return (f"{head}; even --preset {name} would take about {format_duration(estimate)}: "
                f"use --preset {name} with fewer --steps, or train on a GPU")
    return f"{head}; --steps {steps:,} fits in an hour, or train on a GPU"
