"""The INT8 floor's step choice (apucodec/runtime/int8_floor.py) on stand-in step functions: which steps go to FP32,
how padded and flush steps are judged, and the counts the run report shows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apucodec.runtime.int8_floor import FloorCounts, guarded_step, rms_dbfs

STEP_FRAMES, HOP = 4, 8


class Graph:
    """A step function that records its calls and answers with a constant output of a chosen level."""

    def __init__(self, name: str, level: float) -> None:
        self.name, self.level, self.calls = name, level, 0

    def __call__(self, x: np.ndarray, state: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        return np.full((1, 1, STEP_FRAMES * HOP), self.level, np.float32), state + 1


def _guard(stage: str, int8: Graph, fp32: Graph, counts: FloorCounts, floor: float = -45.0):
    opened = []

    def factory():
        opened.append(True)
        return fp32
    return guarded_step(stage, STEP_FRAMES, int8, factory, floor, counts), opened


def _audio(level: float, real_frames: int = STEP_FRAMES) -> np.ndarray:
    x = np.zeros((1, 1, STEP_FRAMES * HOP), np.float32)
    x[..., : real_frames * HOP] = level
    return x


def test_rms_dbfs() -> None:
    assert rms_dbfs(np.full(100, 0.1, np.float32)) == pytest.approx(-20.0)
    assert rms_dbfs(np.zeros(10, np.float32)) == -math.inf
    assert rms_dbfs(np.zeros(0, np.float32)) == -math.inf


def test_encoder_judges_the_input_before_running() -> None:
    int8, fp32, counts = Graph("int8", 0.5), Graph("fp32", 0.5), FloorCounts()
    step, opened = _guard("encoder", int8, fp32, counts)
    state = np.zeros((1, 3), np.float32)
    step(_audio(0.1), state, np.array([0, 100], np.float32))          # -20 dBFS: INT8
    assert (int8.calls, fp32.calls, opened) == (1, 0, [])
    step(_audio(1e-4), state, np.array([4, 100], np.float32))         # -80 dBFS: FP32 only, INT8 never runs
    assert (int8.calls, fp32.calls) == (1, 1)
    assert (counts.int8, counts.fp32) == (1, 1)
    assert counts.describe(-45.0) == "1 of 2 steps below -45 dBFS ran on the FP32 graph"


def test_padded_last_step_is_judged_on_its_real_frames() -> None:
    int8, fp32, counts = Graph("int8", 0.5), Graph("fp32", 0.5), FloorCounts()
    # one real frame at -20 dBFS and three padded zero frames: the whole step's RMS would be -26 dBFS, the real
    # part's -20; with a -23 dBFS floor only the real part keeps it on INT8
    step, _ = _guard("encoder", int8, fp32, counts, floor=-23.0)
    step(_audio(0.1, real_frames=1), np.zeros((1, 3), np.float32), np.array([8, 1], np.float32))
    assert (int8.calls, fp32.calls) == (1, 0)


def test_flush_steps_follow_the_step_before() -> None:
    int8, fp32, counts = Graph("int8", 0.5), Graph("fp32", 0.5), FloorCounts()
    step, _ = _guard("encoder", int8, fp32, counts)
    state = np.zeros((1, 3), np.float32)
    step(_audio(1e-4), state, np.array([0, 4], np.float32))           # quiet
    step(_audio(0.0), state, np.array([4, 0], np.float32))            # flush: no input left -> like the one before
    assert (int8.calls, fp32.calls) == (0, 2)
    step(_audio(0.1), state, np.array([8, 4], np.float32))            # loud
    step(_audio(0.0), state, np.array([12, -4], np.float32))          # flush after a loud step: INT8
    assert (int8.calls, fp32.calls) == (2, 2)


def test_decoder_reruns_a_quiet_int8_step_in_fp32_from_the_same_state() -> None:
    quiet_int8, fp32, counts = Graph("int8", 1e-4), Graph("fp32", 2e-4), FloorCounts()
    step, opened = _guard("decoder", quiet_int8, fp32, counts)
    state = np.full((1, 3), 7.0, np.float32)
    out, next_state = step(np.ones((1, 2, STEP_FRAMES), np.float32), state, np.array([0, 100], np.float32))
    assert (quiet_int8.calls, fp32.calls, len(opened)) == (1, 1, 1)
    assert np.all(out == np.float32(2e-4)) and np.all(next_state == 8.0)   # FP32's answer, from the input state
    loud_int8 = Graph("int8", 0.3)
    step, opened = _guard("decoder", loud_int8, fp32, counts)
    out, _ = step(np.ones((1, 2, STEP_FRAMES), np.float32), state, np.array([0, 100], np.float32))
    assert np.all(out == np.float32(0.3)) and opened == []


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        guarded_step("rvq", STEP_FRAMES, Graph("a", 0), lambda: Graph("b", 0), -45.0, FloorCounts())
