"""The ONNX Runtime CalibrationDataReader that feeds recorded step feeds to the quantizer.

Quark (like onnxruntime.quantization) pulls calibration inputs through `get_next()` until it returns None, and may
ask for a second pass via `rewind()`. Each item is one step of a step graph as the FP32 graph saw it while
streaming a calibration clip: {audio, state, bounds} (see apucodec/calibration/streams.py). The reader reports
each item it hands out, which is what the CLI's progress bar counts: the quantizer's own time is dominated by
running the float model on these steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

StepCallback = Callable[[int, int], None]   # (steps handed out so far, total)


class StepFeedReader(CalibrationDataReader):
    """Feeds each recorded step's `{input name: array}` in order."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]], on_step: StepCallback | None = None):
        self.feeds = [{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in f.items()} for f in feeds]
        self.on_step = on_step
        self._position = 0
        self.served = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._position >= len(self.feeds):
            return None
        feeds = self.feeds[self._position]
        self._position += 1
        self.served += 1
        if self.on_step is not None:
            self.on_step(self._position, len(self.feeds))
        return feeds

    def rewind(self) -> None:
        self._position = 0

    def __len__(self) -> int:
        return len(self.feeds)
