"""Step graphs run over calibration clips in order, exactly as the runtime runs them, for calibration and scoring.

A step graph's activations depend on what it carries between steps (the caches of past input, in `state`) and on
where the step lies in the stream (`bounds`, which masks what lies outside the file). Feeding the quantizer
isolated steps with zero state would calibrate every layer on a stream's start only, so each calibration clip is
streamed through the FP32 graph by the runtime's own Stepper (buffering, state, bounds, final flush), and every
step call's feeds are recorded: one calibration item = {audio, state, bounds} of one real step.

The fidelity check streams held-out clips the same way through both graphs, each carrying its *own* state, so
error that the INT8 graph feeds back into its caches is measured too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from apucodec.contract.steps import frames_for_length
from apucodec.model.directory import ModelDir
from apucodec.runtime.onnx_step import Feeds, onnx_step, stage_stepper
from apucodec.runtime.stepper import StepFunction, Stepper


def graph_stepper(model: ModelDir, role: str, step: StepFunction) -> Stepper:
    """A fresh stream (zero state) through the step graph `role` of `model`, computing with `step` (the runtime's
    own stage_stepper: the same geometry as `apucodec run`)."""
    return stage_stepper(model, model.files[role], step)


def stream(stepper: Stepper, x: np.ndarray, total_frames: int | None = None) -> np.ndarray:
    """All of `x` [C, n] through `stepper`, flushed: the whole-file-aligned output [C', frames * out_rate]."""
    head = stepper.push(x)
    return np.concatenate([head, stepper.finish(total_frames)], axis=1)


def steps_per_clip(model: ModelDir, role: str, samples: int) -> int:
    """Step calls the encoder graph `role` makes over a clip of `samples` (the last steps flush its delay)."""
    delay_frames = model.streaming("encoder").delay_samples // model.hop
    return -(-(frames_for_length(samples, model.hop) + delay_frames) // model.files[role].step_frames)


def record_feeds(session: Any, model: ModelDir, role: str, clips: Sequence[np.ndarray],
                 limit: int | None = None) -> list[list[Feeds]]:
    """Per clip, the feeds of every step the encoder graph `role` (on `session`) gets when it streams the clip;
    clips are streamed in order until `limit` steps are recorded (the rest are not streamed)."""
    per_clip: list[list[Feeds]] = []
    for clip in clips:
        if limit is not None and sum(len(f) for f in per_clip) >= limit:
            break
        recorded: list[Feeds] = []
        stream(graph_stepper(model, role, onnx_step(session, model.files[role], recorded=recorded)),
               np.asarray(clip, dtype=np.float32)[None])
        per_clip.append(recorded)
    return per_clip


def first_steps(per_clip: Sequence[Sequence[Feeds]], limit: int) -> list[Feeds]:
    """At most `limit` feeds, taking whole clips in order (so each kept stream has its start, middle and flush)
    and cutting only the last one short."""
    out: list[Feeds] = []
    for feeds in per_clip:
        out.extend(feeds[: limit - len(out)])
        if len(out) >= limit:
            break
    return out
