"""Everything Quark needs done to the process, in one place: it writes temp files into the working directory
(so it runs inside a private folder), reconfigures the root logger (undone), installs its own SIGINT handling (a
Ctrl-C inside it stays an interrupt), and reads calibration data through a reader whose progress we follow.
Nothing else in apucodec touches these process-global settings."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from apucodec.calibration.presets import build_qconfig, preset
from apucodec.calibration.reader import StepCallback, StepFeedReader
from apucodec.errors import ApucodecError, first_line


@contextlib.contextmanager
def _inside(folder: Path, quiet: bool) -> Iterator[io.StringIO]:
    """cwd -> `folder` (Quark writes quantized_info.csv into the cwd); Quark's own output captured if quiet.

    Quark logs some notices through the root logger, whose handler holds the real stderr, so quiet mode also
    raises the root level for the duration.
    """
    previous = os.getcwd()
    captured = io.StringIO()
    root = logging.getLogger()
    level = root.level
    os.chdir(folder)
    try:
        if quiet:
            root.setLevel(logging.ERROR)
            with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
                yield captured
        else:
            yield captured
    finally:
        root.setLevel(level)
        os.chdir(previous)


def _tail(text: str, lines: int = 3) -> str:
    useful = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return " | ".join(useful[-lines:])


@contextlib.contextmanager
def _calibration_progress(on_step: StepCallback | None) -> Iterator[bool]:
    """Report each step as Quark's calibrator runs the float model on it; yields whether that hook is in place.

    Quark 0.13 drains our reader into its own CachedDataReader up front (instant) and then feeds the cached
    steps to the calibration inference, which is where the minutes go. Swapping in a subclass of that cache for
    the duration of the call makes the progress bar follow the real work. If a future Quark moves it, the caller
    falls back to counting steps as they are handed over.
    """
    module = sys.modules.get("quark.onnx.quantization.quantize")
    cache_class = getattr(module, "CachedDataReader", None)
    if on_step is None or cache_class is None:
        yield False
        return

    class ReportingCache(cache_class):  # type: ignore[misc, valid-type]
        def reset_iter(self) -> None:
            super().reset_iter()
            self._apucodec_fed = 0

        def get_next(self):  # type: ignore[no-untyped-def]
            item = super().get_next()
            if item is not None:
                self._apucodec_fed = getattr(self, "_apucodec_fed", 0) + 1
                on_step(min(self._apucodec_fed, len(self)), len(self))
            return item

    module.CachedDataReader = ReportingCache
    try:
        yield True
    finally:
        module.CachedDataReader = cache_class


@contextlib.contextmanager
def _interrupt_guard() -> Iterator[list[bool]]:
    """Remember a Ctrl-C that arrives while Quark runs: its calibrator catches BaseException and re-raises it as a
    RuntimeError ("The calibration failed"), which would turn the user's interrupt into a bogus quantization error."""
    seen = [False]
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def on_sigint(signum: int, frame: Any) -> None:
        seen[0] = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def run_quark(quark_onnx: Any, chosen_name: str, float_path: Path, out_path: Path, feeds: list[dict[str, Any]],
               exclude: list[str], on_step: StepCallback | None, work: Path, quiet: bool) -> None:
    config = build_qconfig(quark_onnx, preset(chosen_name), str(work), exclude)
    with _inside(work, quiet) as captured, _calibration_progress(on_step) as hooked, \
            _interrupt_guard() as interrupted:
        reader = StepFeedReader(feeds, None if hooked else on_step)
        try:
            quark_onnx.ModelQuantizer(config).quantize_model(str(float_path), str(out_path), reader)
        except (KeyboardInterrupt, ApucodecError):
            raise
        except Exception as exc:  # Quark raises assorted types (ValueError, RuntimeError, onnx errors)
            if interrupted[0]:
                raise KeyboardInterrupt from None
            detail = _tail(captured.getvalue())
            raise ApucodecError(f"{float_path.name}: Quark could not quantize it with preset {chosen_name} "
                                f"({first_line(exc, with_type=True)})"
                                + (f"; Quark said: {detail}" if detail else "")) from None
    if not out_path.is_file():
        raise ApucodecError(f"{float_path.name}: Quark finished without writing a quantized model")
