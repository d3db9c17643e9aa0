"""Threads joined by small bounded queues, with per-item timings: the overlap machinery of the pipeline.

Each lane is a generator that consumes the previous lane's items and yields its own; each runs in its own thread,
and the last lane's items are consumed by the calling thread. onnxruntime and BLAS release the GIL, so on an APU
the NPU, CPU and GPU lanes really work on different steps at once, and a queue of `depth` items between lanes
bounds memory whatever the input's length.

Failure handling is what makes this safe to interrupt: the first exception in any lane (or Ctrl-C in the calling
thread) sets a shared abort flag, every blocked get/put notices it within a few milliseconds, all threads are
joined, and the original exception is re-raised in the caller — so the caller's temp-file cleanup always runs.

`overlap=False` chains the same generators in the calling thread instead: every item goes through all lanes before
the next is read, with the same per-item timings — the sequential baseline `bench` measures the pipelining gain
against.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_END = object()
_POLL_SECONDS = 0.05


class _Aborted(Exception):
    """Raised inside a lane when another lane failed or the run was interrupted."""


@dataclass(frozen=True)
class StageTiming:
    """One stage's work on one item: seconds since the run started."""

    stage: str
    index: int
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


Lane = Callable[[Iterator[Any]], Iterator[Any]]
Source = Callable[[], Iterator[Any]]


class Lanes:
    """Run `source -> lane -> lane ... -> consumer` with one thread per lane and bounded queues between them."""

    def __init__(self, depth: int = 2, overlap: bool = True) -> None:
        if depth < 1:
            raise ValueError("queue depth must be at least 1")
        self.depth = depth
        self.overlap = overlap
        self.timings: list[StageTiming] = []
        self.step_timings: list[StageTiming] = []  # one per step-graph call (see `step_recorder`)
        self._abort = threading.Event()
        self._errors: list[BaseException] = []
        self._t0 = time.perf_counter()

    @contextlib.contextmanager
    def timed(self, stage: str, index: int) -> Iterator[None]:
        """Record how long the block takes as `stage` working on item `index`."""
        start = time.perf_counter() - self._t0
        yield
        self.timings.append(StageTiming(stage, index, start, time.perf_counter() - self._t0))

    def step_recorder(self, stage: str) -> Callable[[float, float], None]:
        """A `Stepper` observer: records each step-graph call of `stage` (index = the stage's step count)."""
        counter = itertools.count()

        def record(start: float, end: float) -> None:
            self.step_timings.append(StageTiming(stage, next(counter), start - self._t0, end - self._t0))
        return record

    def _get(self, q: queue.Queue) -> Any:
        while True:
            if self._abort.is_set():
                raise _Aborted
            try:
                return q.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue

    def _put(self, q: queue.Queue, item: Any) -> None:
        while True:
            if self._abort.is_set():
                raise _Aborted
            try:
                q.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _iterate(self, q: queue.Queue) -> Iterator[Any]:
        while True:
            item = self._get(q)
            if item is _END:
                return
            yield item

    def _thread(self, name: str, produce: Callable[[], Iterator[Any]], out: queue.Queue) -> threading.Thread:
        def body() -> None:
            items = produce()
            try:
                for item in items:
                    self._put(out, item)
                self._put(out, _END)
            except _Aborted:
                pass
            except BaseException as exc:  # re-raised in the caller's thread
                self._errors.append(exc)
                self._abort.set()
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()  # let the lane's own `with` blocks (open files) clean up

        return threading.Thread(target=body, name=f"apucodec-{name}", daemon=True)

    def run(self, source: Source, lanes: list[tuple[str, Lane]], consume: Callable[[Any], None],
            source_name: str = "reader") -> None:
        """Run to completion in the calling thread; re-raise the first failure of any lane."""
        self._t0 = time.perf_counter()
        if not self.overlap:
            self._run_sequential(source, lanes, consume)
            return
        threads = []
        q: queue.Queue = queue.Queue(self.depth)
        threads.append(self._thread(source_name, source, q))
        for name, lane in lanes:
            out: queue.Queue = queue.Queue(self.depth)
            threads.append(self._thread(name, lambda lane=lane, q=q: lane(self._iterate(q)), out))
            q = out
        for thread in threads:
            thread.start()
        try:
            for item in self._iterate(q):
                consume(item)
        except _Aborted:
            pass
        except BaseException:
            self._abort.set()
            raise
        finally:
            for thread in threads:
                thread.join()
        if self._errors:
            raise self._errors[0]

    def _run_sequential(self, source: Source, lanes: list[tuple[str, Lane]], consume: Callable[[Any], None]) -> None:
        """One thread, pull-driven: the consumer asks the last lane for an item, which asks the one before, ..."""
        items = source()
        stages = [items]
        for _, lane in lanes:
            items = lane(items)
            stages.append(items)
        try:
            for item in items:
                consume(item)
        finally:
            for stage in reversed(stages):  # close the lanes' `with` blocks (open files) on failure too
                close = getattr(stage, "close", None)
                if close is not None:
                    close()
