"""Progress reporting for the export steps: one line per step with what it produced and how long it took."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Log = Callable[[str], None]


class StepLog:
    """Collects per-step wall times (for the manifest) and prints `[export] step: result (1.2 s)` lines."""

    def __init__(self, log: Log | None) -> None:
        self._log = log or (lambda message: None)
        self.seconds: dict[str, float] = {}

    def info(self, message: str) -> None:
        self._log(f"[export] {message}")

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Time a step; the body appends a short summary of its result to the yielded list."""
        summary: list[str] = []
        start = time.perf_counter()
        yield summary
        elapsed = time.perf_counter() - start
        self.seconds[name] = round(self.seconds.get(name, 0.0) + elapsed, 3)
        detail = f": {'; '.join(summary)}" if summary else ""
        self.info(f"{name}{detail} ({elapsed:.1f} s)")
