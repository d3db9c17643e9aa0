"""From an opened stage session to a `Stepper`: the step function, its shape facts, and the INT8 floor.

`CodecEngine.stepper` and the live `Stream` build their Steppers here, so a file run and a live stream step the same
way. When a stage runs an INT8 graph (CPU INT8 or the NPU's), quiet steps go to the stage's FP32 step graph on the
CPU EP (apucodec/runtime/int8_floor.py says why). That FP32 session opens on the first quiet step and is then kept
for the Codec's lifetime; most files never open it.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from typing import Any

from apucodec.contract.manifest import FileEntry
from apucodec.contract.steps import step_role
from apucodec.errors import ApucodecError
from apucodec.model.directory import ModelDir
from apucodec.runtime.int8_floor import FloorCounts, StepCall, guarded_step, stage_floor
from apucodec.runtime.onnx_step import onnx_step, stage_stepper
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.runtime.stepper import StepObserver, Stepper

INT8_PRECISIONS = ("cpu-int8", "npu-int8")


class StageSteps:
    """Step functions for the stages of one Codec, each with its INT8 floor where it runs an INT8 graph."""

    def __init__(self, model: ModelDir, sessions: dict[str, Any], settings: SessionSettings) -> None:
        self.model = model
        self.sessions = sessions
        self.settings = settings
        self._floor_counts: weakref.WeakKeyDictionary[Stepper, tuple[str, FloorCounts]] = weakref.WeakKeyDictionary()
        self._fp32: dict[str, StepCall] = {}
        self._lock = threading.Lock()

    def record(self, stage: str) -> FileEntry:
        """The manifest entry of the step graph `stage`'s session runs (the session carries it)."""
        return self.sessions[stage].record

    def guarded(self, stage: str) -> bool:
        """Does this stage run an INT8 graph with a floor (so quiet steps may run in FP32)?"""
        precision = self.record(stage).graph_precision
        return precision in INT8_PRECISIONS and math.isfinite(self.settings.int8_floor_dbfs)

    def _fp32_step(self, stage: str) -> Callable[[], StepCall]:
        def factory() -> StepCall:
            with self._lock:
                if stage not in self._fp32:
                    from apucodec.runtime.sessions import open_cpu_session

                    entry = self.record(stage)
                    session = open_cpu_session(self.model, step_role(stage, entry.step_frames), self.settings)
                    self._fp32[stage] = onnx_step(session, session.record)
                return self._fp32[stage]
        return factory

    def stepper(self, stage: str, *, lead_frames: int = 0, on_step: StepObserver | None = None) -> Stepper:
        """A fresh stream through `stage`'s step graph (zero state: the start of a stream)."""
        entry = self.record(stage)
        step_frames = entry.step_frames
        step = onnx_step(self.sessions[stage], entry)
        counts = FloorCounts()
        if self.guarded(stage):
            step = guarded_step(stage, step_frames, step, self._fp32_step(stage), self.settings.int8_floor_dbfs,
                                counts)
        stepper = stage_stepper(self.model, entry, step, lead_frames=lead_frames, on_step=on_step,
                                first=self._first_step(stage, step_frames))
        self._floor_counts[stepper] = (stage, counts)
        return stepper

    def _first_step(self, stage: str, step_frames: int) -> tuple[StepCall, int, int] | None:
        """EnCodec only: a stream's first step must span the config's `start_frames` (its reflect padding looks a few
        frames ahead at the file's start); it runs on the shortest FP32 graph that long, on the CPU EP, opened on
        first use and kept."""
        start = int(getattr(self.model.config, "start_frames", 1))
        if start <= step_frames:
            return None
        fits = [(e.step_frames, role) for role, e in self.model.files.items()
                if e.stage == stage and e.precision == "fp32" and (e.step_frames or 0) >= start]
        if not fits:
            raise ApucodecError(f"{self.model.path}: no {stage} step graph spans the {start} frames a stream's first "
                                "step needs; re-export with that step size in --step-frames")
        frames, role = min(fits)
        key = f"first:{stage}"
        with self._lock:
            if key not in self._fp32:
                from apucodec.runtime.sessions import open_cpu_session

                session = open_cpu_session(self.model, role, self.settings)
                self._fp32[key] = onnx_step(session, session.record)
        return self._fp32[key], frames, self.model.files[role].horizon_frames

    def notes(self, steppers: list[Stepper]) -> list[str]:
        """One line per stepper that sent steps to the FP32 graph (for the run report)."""
        out = []
        for stepper in steppers:
            stage, counts = self._floor_counts[stepper]
            if counts.fp32:
                out.append(f"{stage}: {counts.describe(stage_floor(stage, self.settings.int8_floor_dbfs))}")
        return out
