"""The one way to step an ONNX step graph: a session as a Stepper step function, and a stage's Stepper for a graph.

Every place that streams audio through a step graph goes through here: the runtime's stage sessions (in-process
and worker), the INT8 floor's FP32 fallback, calibration (feeds recorded while streaming the FP32 graph, fidelity
of the INT8 graph) and export parity. They used to write this out four or five times, each with its own idea of
which input is the state; now a fix or a check made here holds for all of them. Torch-free.

    onnx_step(session, record=None, recorded=None)   (x, state, bounds) -> (output, next state)
    stage_stepper(model, record, step, ...)          a fresh stream through that graph (Stepper.for_stage)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from apucodec.contract.manifest import FileEntry
from apucodec.model.directory import ModelDir
from apucodec.runtime.stepper import StepFunction, Stepper

Feeds = dict[str, np.ndarray]


def _names(session: Any, record: FileEntry | None) -> tuple[list[str], list[str]]:
    """(inputs, outputs) in step order: main, state, bounds -> output, next state.

    The manifest's record names them when given (it is the contract, and the session was checked against it when
    it opened); otherwise the graph's own order, which is the same for every step graph apucodec writes."""
    if record is not None and record.inputs and record.outputs:
        return [t.name for t in record.inputs], [t.name for t in record.outputs]
    if hasattr(session, "run_feeds"):  # a runtime stage session (in-process or worker)
        return list(session.inputs), list(session.outputs)
    return [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]


def _runner(session: Any, outputs: list[str]) -> Callable[[Feeds], tuple[np.ndarray, np.ndarray]]:
    wanted = outputs[:2]
    if hasattr(session, "run_feeds"):
        def run_stage(feeds: Feeds) -> tuple[np.ndarray, np.ndarray]:
            out = session.run_feeds(feeds)
            return out[wanted[0]], out[wanted[1]]
        return run_stage

    def run_ort(feeds: Feeds) -> tuple[np.ndarray, np.ndarray]:  # an onnxruntime.InferenceSession
        y, next_state = session.run(wanted, feeds)
        return y, next_state
    return run_ort


def onnx_step(session: Any, record: FileEntry | None = None, *,
              recorded: list[Feeds] | None = None) -> StepFunction:
    """`session` (an onnxruntime.InferenceSession, or a runtime StageSession / WorkerSession) as a step function.

    `record` is the graph's manifest entry (its input and output names); `recorded`, if given, gets a copy of every
    step's feeds, in order: calibration shows the quantizer exactly what a runtime stream feeds the graph (state
    and bounds included), and the copies outlive the stream's buffers."""
    names, outputs = _names(session, record)
    if len(names) != 3 or len(outputs) < 2:
        raise ValueError(f"a step graph takes (input, state, bounds) and returns (output, next_state); this one "
                         f"takes {names} and returns {outputs}")
    run = _runner(session, outputs)

    def step(x: np.ndarray, state: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feeds = {name: np.ascontiguousarray(v, dtype=np.float32) for name, v in zip(names, (x, state, bounds),
                                                                                      strict=True)}
        if recorded is not None:
            recorded.append({name: value.copy() for name, value in feeds.items()})
        return run(feeds)

    return step


def stage_stepper(model: ModelDir, record: FileEntry, step: StepFunction, **options: Any) -> Stepper:
    """A fresh stream (zero state) through the step graph `record` of `model`, computing with `step`; `options`
    go to the Stepper (lead_frames, on_step, first). The stage's delay and state size come from the manifest's
    streaming section, the step size and horizon from the graph's own entry."""
    stage = record.stage
    if stage is None or record.step_frames is None or record.horizon_frames is None:
        raise ValueError(f"{record.role} is not a step graph")
    facts = model.streaming(stage)
    return Stepper.for_stage(step, stage, hop=model.hop, latent_dim=model.config.latent_dim,
                             delay_samples=facts.delay_samples, step_frames=record.step_frames,
                             state_size=facts.state_size, horizon=record.horizon_frames, **options)
