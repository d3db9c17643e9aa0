"""The ONNX Runtime CalibrationDataReader that feeds calibration windows to the quantizer.

Quark (like onnxruntime.quantization) pulls calibration inputs through `get_next()` until it returns None, and may
ask for a second pass via `rewind()`. The reader reports each window it hands out, which is what the CLI's
progress bar counts: the quantizer's own time is dominated by running the float model on these windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

WindowCallback = Callable[[int, int], None]   # (windows handed out so far, total)


class WindowDataReader(CalibrationDataReader):
    """Feeds `{input_name: window}` for each [1, 1, window_samples] window, in order."""

    def __init__(self, input_name: str, windows: Sequence[np.ndarray], on_window: WindowCallback | None = None):
        self.input_name = input_name
        self.windows = [np.ascontiguousarray(w, dtype=np.float32) for w in windows]
        self.on_window = on_window
        self._position = 0
        self.served = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._position >= len(self.windows):
            return None
        window = self.windows[self._position]
        self._position += 1
        self.served += 1
        if self.on_window is not None:
            self.on_window(self._position, len(self.windows))
        return {self.input_name: window}

    def rewind(self) -> None:
        self._position = 0

    def __len__(self) -> int:
        return len(self.windows)
