"""Stepping a stream through a step graph: buffering to whole steps, state, bounds, delay, and the final flush.

A `Stepper` turns a stream of any-sized pieces into static steps of S frames for one step graph, carries the
graph's state from step to step, drops the first `delay` output samples (the stage's lookahead: they belong to
before the stream's start) and, when told the stream's total length, feeds zero steps until every output sample of
the whole-file network has come out, then trims to exactly that length. Because the graphs zero everything outside
the whole-file signal (see apucodec/export/streaming.py), its output equals whole-file inference at every sample.

It is synchronous and single-threaded on purpose: the engine runs one Stepper per stage in its own lane (so the
encoder works on step k+1 while the decoder works on step k), and the live `Stream` API calls it directly.
Memory is one step of buffered input plus the state, whatever the stream's length.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from apucodec.contract.steps import frames_for_length

# (input [1, C, n], state [1, N], bounds [2]) -> (output [1, C', m], next state [1, N])
StepFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# Told (start, end) perf_counter seconds of every step-graph call: `bench` reports per-step latency from these,
# because a lane's item can hold any number of steps (or none, while input is buffered).
StepObserver = Callable[[float, float], None]


class Stepper:
    """One stage's stream: pieces [C, n] in (n in input samples), whole-file-aligned pieces [C', m] out.

    `in_rate` / `out_rate` are samples per latent frame on each side (encoder: hop -> 1, decoder: 1 -> hop);
    `delay` is in output samples; `horizon` bounds the `bounds` input (the graph's exact-arithmetic range);
    `on_step`, if given, is told the start and end of every step-graph call. `first`, if given, is (step function,
    frames, horizon) of a longer graph that must run the stream's first step: EnCodec's reflect padding makes its first
    outputs depend on the next few frames (apucodec/export/encodec_steps.py); the state layout does not depend on
    the step size, so the stream carries on with the regular graph afterwards.
    """

    def __init__(self, step: StepFunction, *, step_frames: int, in_rate: int, out_rate: int, in_channels: int,
                 out_channels: int, delay: int, state_size: int, horizon: int, lead_frames: int = 0,
                 on_step: StepObserver | None = None, first: tuple[StepFunction, int, int] | None = None) -> None:
        self._step = step
        self._first = first if first is not None and first[1] > step_frames else None
        self._on_step = on_step
        self.step_frames, self.in_rate, self.out_rate = step_frames, in_rate, out_rate
        self.in_channels, self.out_channels = in_channels, out_channels
        self.delay, self.horizon = delay, max(horizon, self._first[2] if self._first is not None else 0)
        self.state = np.zeros((1, state_size), dtype=np.float32)
        # `lead_frames` zero frames before the stream's start shift the step boundaries (a decoder fed by an encoder
        # whose delay is not a whole number of steps then runs as soon as each encoder step lands); the graph
        # zeroes them like any other sample outside the signal, and their output is dropped with the delay.
        self._pending = np.zeros((in_channels, lead_frames * in_rate), dtype=np.float32)
        self.frames_in = -lead_frames  # input frames consumed by steps so far (negative: still in the lead)
        self.received = 0        # input samples received (before padding)
        self.emitted = 0         # output samples handed out
        self._to_drop = delay + lead_frames * out_rate
        self.steps = 0

    @classmethod
    def for_stage(cls, step: StepFunction, stage: str, *, hop: int, latent_dim: int, delay_samples: int,
                  step_frames: int, state_size: int, horizon: int, **options: Any) -> Stepper:
        """The one statement of a stage's stepping geometry. The encoder takes `hop` audio samples (1 channel) per
        frame and gives one latent frame (`latent_dim` channels); the decoder the reverse. `delay_samples` is the
        stage's lookahead at the codec's sample rate, which the encoder's output (one value per frame) carries as
        whole frames. `options`: lead_frames, on_step, first."""
        if stage == "encoder":
            geometry = dict(in_rate=hop, out_rate=1, in_channels=1, out_channels=latent_dim,
                            delay=delay_samples // hop)
        elif stage == "decoder":
            geometry = dict(in_rate=1, out_rate=hop, in_channels=latent_dim, out_channels=1, delay=delay_samples)
        else:
            raise ValueError(f"stage must be encoder or decoder, not {stage!r}")
        return cls(step, step_frames=step_frames, state_size=state_size, horizon=horizon, **geometry, **options)

    @property
    def step_samples(self) -> int:
        return self.step_frames * self.in_rate

    def _first_samples(self) -> int:
        """Input samples the next step takes: the first step's longer span, or the regular step."""
        return self._first[1] * self.in_rate if self._first is not None and not self.steps else self.step_samples

    def _run(self, chunk: np.ndarray, frames_left: int | None) -> np.ndarray:
        h = self.horizon
        left = h if frames_left is None else max(-h, min(h, frames_left))
        bounds = np.array([max(-h, min(self.frames_in, h)), left], dtype=np.float32)
        first = self._first is not None and not self.steps
        started = time.perf_counter()
        out, self.state = (self._first[0] if first else self._step)(chunk[None], self.state, bounds)
        if self._on_step is not None:
            self._on_step(started, time.perf_counter())
        self.frames_in += chunk.shape[1] // self.in_rate
        self.steps += 1
        out = out[0]
        if self._to_drop:
            cut = min(self._to_drop, out.shape[1])
            out, self._to_drop = out[:, cut:], self._to_drop - cut
        return out

    def _collect(self, pieces: list[np.ndarray]) -> np.ndarray:
        out = np.concatenate(pieces, axis=1) if pieces else np.zeros((self.out_channels, 0), dtype=np.float32)
        self.emitted += out.shape[1]
        return out

    def push(self, piece: np.ndarray) -> np.ndarray:
        """Add input [C, n]; return the output [C', m] that whole steps completed (m may be 0)."""
        piece = np.asarray(piece, dtype=np.float32).reshape(self.in_channels, -1)
        self.received += piece.shape[1]
        data = np.concatenate([self._pending, piece], axis=1) if self._pending.shape[1] else piece
        pieces, start = [], 0
        while data.shape[1] - start >= (n := self._first_samples()):
            pieces.append(self._run(np.ascontiguousarray(data[:, start: start + n]), None))
            start += n
        self._pending = data[:, start:].copy()
        return self._collect(pieces)

    def finish(self, total_frames: int | None = None) -> np.ndarray:
        """No more input: flush the delay with zero steps and return the rest, so that the total output is exactly
        `total_frames * out_rate` samples (default: the frames the received input covers, the last one padded)."""
        if total_frames is None:
            total_frames = frames_for_length(self.received, self.in_rate)
        target = total_frames * self.out_rate
        pieces: list[np.ndarray] = []
        produced = self.emitted
        data = self._pending
        while produced < target:
            n = self._first_samples()
            chunk = np.zeros((self.in_channels, n), dtype=np.float32)
            take = min(data.shape[1], n)
            chunk[:, :take] = data[:, :take]
            data = data[:, take:]
            out = self._run(chunk, total_frames - (self.frames_in))
            out = out[:, : target - produced]
            produced += out.shape[1]
            pieces.append(out)
        self._pending = np.zeros((self.in_channels, 0), dtype=np.float32)
        return self._collect(pieces)
