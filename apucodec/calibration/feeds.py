"""Calibration feeds: the input dicts a graph sees at run time, produced from real audio.

A quantizer can only set ranges from the activations it is shown, so each step graph is fed what the runtime
feeds it: the steps in order, threading each step's output state into the next step's input, so the state tensors
(and the activations that depend on them) hold realistic values rather than zeros. A decoder's steps carry the
*dequantized codes* (FP32 encoder -> NumPy RVQ -> codebook lookup), its input when decoding an .apc file or `run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray]


def zero_state(session: Any, name: str) -> np.ndarray:
    """A zero tensor of the session's input `name` (static shape): the step graphs' start-of-stream state."""
    spec = next(i for i in session.get_inputs() if i.name == name)
    if not all(isinstance(d, int) for d in spec.shape):
        raise ValueError(f"state input {name!r} has a dynamic shape {spec.shape}; step graphs use static shapes")
    return np.zeros(spec.shape, dtype=np.float32)


def stepped_feeds(session: Any, steps: Iterable[Mapping[str, np.ndarray]], state: Mapping[str, str],
                  initial: Mapping[str, np.ndarray] | None = None) -> Iterator[Feed]:
    """Each step's full feed, running the FP32 step graph `session` in order to carry its state forward.

    `steps` yields the per-step inputs that are not state (e.g. {"audio": ..., "bounds": ...}); `state` maps each
    state input to the output holding its next value (e.g. {"state": "next_state"}). The state starts at
    `initial` (default zeros, as at the start of a stream). Call once per stream (one file, one continuous
    recording): a new stream starts from zero state again.
    """
    current = {name: np.asarray(initial[name], dtype=np.float32) if initial and name in initial
               else zero_state(session, name) for name in state}
    outputs = [o.name for o in session.get_outputs()]
    wanted = [outputs.index(state[name]) for name in state]
    for step in steps:
        feed = {**{k: np.ascontiguousarray(v) for k, v in step.items()}, **current}
        yield feed
        results = session.run(None, feed)
        current = {name: results[index] for name, index in zip(state, wanted, strict=True)}


def chain(*streams: Iterable[Feed]) -> Iterator[Feed]:
    """Feeds of several streams (e.g. one `stepped_feeds` per calibration file), one after the other."""
    for stream in streams:
        yield from stream
