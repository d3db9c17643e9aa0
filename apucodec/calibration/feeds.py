"""Calibration feeds: the input dicts a graph sees at run time, produced from real audio.

A quantizer can only set ranges from the activations it is shown, so each graph is fed what the runtime feeds it:

* a windowed encoder: the audio windows themselves;
* a decoder: the *dequantized codes* of those windows (FP32 encoder -> NumPy RVQ -> codebook lookup), not the raw
  latent, because that is its input when decoding an .apc file or running `run`;
* a stateful step graph: the steps in order, threading each step's output state into the next step's input, so the
  state tensors (and the activations that depend on them) hold realistic values rather than zeros.

Quiet audio is a known weak spot of static INT8 ranges (they are set by the loud windows), so `level_augmented`
adds attenuated copies of the calibration windows; whether that helps a given preset is measured, not assumed
(measured on the windowed format: docs/bench/cpu-int8-h15.txt).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from apucodec.runtime.rvq import NumpyRVQ

Feed = dict[str, np.ndarray]


def window_feeds(windows: Iterable[np.ndarray], input_name: str) -> Iterator[Feed]:
    """{input_name: window} for each window ([1, 1, samples] float32)."""
    for window in windows:
        yield {input_name: np.ascontiguousarray(window, dtype=np.float32)}


def level_augmented(windows: Sequence[np.ndarray], gains_db: Sequence[float]) -> list[np.ndarray]:
    """The windows at each gain in `gains_db` (0 keeps the original), in that order, window by window."""
    out = []
    for window in windows:
        for gain in gains_db:
            out.append((window * np.float32(10 ** (gain / 20))).astype(np.float32))
    return out


def level_cycle(windows: Sequence[np.ndarray], gains_db: Sequence[float]) -> list[np.ndarray]:
    """Window i attenuated by gains_db[i % len(gains_db)]: quiet material in the set without more windows."""
    return [(w * np.float32(10 ** (gains_db[i % len(gains_db)] / 20))).astype(np.float32)
            for i, w in enumerate(windows)]


def decoder_feeds(encoder: Any, codebooks: np.ndarray, windows: Iterable[np.ndarray], encoder_input: str,
                  decoder_input: str) -> Iterator[Feed]:
    """{decoder_input: dequantized codes} of each window, through the FP32 `encoder` session and the NumPy RVQ."""
    rvq = NumpyRVQ(codebooks)
    for window in windows:
        latent = encoder.run(None, {encoder_input: np.ascontiguousarray(window, dtype=np.float32)})[0]  # [1, D, F]
        rows = rvq.dequantize(rvq.quantize(latent[0].T))                                               # [F, D]
        yield {decoder_input: np.ascontiguousarray(rows.T[None], dtype=np.float32)}


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
