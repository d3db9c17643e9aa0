"""Stopping a training run without losing it: Ctrl-C and SIGTERM checkpoint, and so does the clock.

A step cannot be cut in the middle and resumed exactly: the quantizer updates its codebooks (EMA k-means, dead-code
restarts) inside the forward pass and the optimizer updates the weights in place, so a checkpoint taken halfway
through a step would hold half of one. The first Ctrl-C (or SIGTERM) therefore asks the loop to finish the step it
is in, write a checkpoint and stop; a second one interrupts at once, as before, leaving the last checkpoint written.
A checkpoint also falls due every few minutes of wall time, so a crash or SIGKILL loses at most those minutes.

Under torchrun every rank must take the same decision in the same step (a checkpoint gathers every rank's random
generators), so the decisions are summed over ranks once per step (`agree`).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch

from apucodec.codec import distributed


class StopRequests:
    """While active, the first SIGINT/SIGTERM sets `requested` instead of raising; the handler then steps aside,
    so a second signal raises KeyboardInterrupt (or the CLI's SIGTERM exception) as usual."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self.requested: str | None = None
        self._say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # signal handlers live on the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = signal.Signals(signum).name
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
        again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
        self._say(f"{self.requested}: writing a checkpoint after this step, then stopping "
                  f"({again} again stops at once, keeping the last checkpoint)")


class CheckpointClock:
    """A checkpoint every `minutes` of wall time (None or 0: never by time)."""

    def __init__(self, minutes: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = minutes * 60 if minutes else None
        self._clock = clock
        self._last = clock()

    def due(self) -> bool:
        return self.seconds is not None and self._clock() - self._last >= self.seconds

    def written(self) -> None:
        self._last = self._clock()


def agree(stop: bool, checkpoint_due: bool, device: torch.device) -> tuple[bool, bool]:
    """(stop, checkpoint) as every rank sees them: true when any rank says so (no-op in a single process)."""
    flags = torch.tensor([float(stop), float(checkpoint_due)], device=device)
    distributed.all_reduce_sum_(flags)
    return bool(flags[0] > 0), bool(flags[1] > 0)
