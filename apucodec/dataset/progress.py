"""Progress of a tokenize job in the unit people plan corpora in: audio-hours done, and audio-hours per wall-hour.

On a terminal the line is redrawn in place (at most a few times a second); in a log (CI, nohup) a line is printed
every `log_every` seconds, so a long job's log shows its rate without flooding.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total_items: int, total_seconds: float, stream: TextIO | None = None,
                 log_every: float = 30.0) -> None:
        self.total_items, self.total_seconds = total_items, total_seconds
        self.items = self.failed = 0
        self.seconds = 0.0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.25 if self.tty else log_every
        self.start = time.monotonic()
        self._last = self.start

    def update(self, audio_seconds: float, failed: bool = False) -> None:
        self.items += 1
        self.failed += int(failed)
        self.seconds += audio_seconds
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._draw()

    @property
    def rate(self) -> float:
        """Audio-hours per wall-hour so far (= audio seconds per wall second)."""
        wall = time.monotonic() - self.start
        return self.seconds / wall if wall > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        left = self.total_seconds - self.seconds
        eta = f", eta {_clock(left / rate)}" if rate > 0 and left > 0 else ""
        return (f"tokenize: {self.items}/{self.total_items} files, {self.seconds / 3600:.3f}/"
                f"{self.total_seconds / 3600:.3f} audio-h, {rate:.1f} audio-h/h, {self.failed} failed{eta}")

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.items:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
