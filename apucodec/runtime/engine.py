"""The one runner: a source -> a chain of stages -> a sink, each stage a lane (thread) with a small bounded queue.

Items are typed: `Piece` carries a block of data through the chain; `End` carries the stream's total length at the
codec rate (and a last block) so every stage can flush exactly, with no side channel between threads. The chains:

    encode:  samples -> [encoder] -> latent rows -> [rvq: quantize]            -> codes
    decode:  codes   -> [rvq: dequantize] -> latent rows -> [decoder]          -> samples
    run:     samples -> [encoder] -> rows -> [rvq: quantize + dequantize] -> rows -> [decoder] -> samples

Data layouts between stages: samples [n] float32; latent rows [frames, latent_dim] float32; codes [n_cb, frames].
Because each stage holds at most a step of input and the queues are bounded, memory does not grow with the input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from apucodec.contract.steps import frames_for_length
from apucodec.runtime.lanes import Lanes
from apucodec.runtime.rvq import NumpyRVQ
from apucodec.runtime.stepper import Stepper


@dataclass
class Piece:
    """A block of the stream; `index` orders timings."""

    index: int
    data: np.ndarray


@dataclass
class End:
    """The stream is over: `total_samples` at the codec rate, and whatever the stage emitted last."""

    index: int
    total_samples: int
    data: np.ndarray


Item = Piece | End
StageFunction = Callable[[Iterator[Item]], Iterator[Item]]


def sample_source(blocks: Iterable[np.ndarray], lanes: Lanes) -> Callable[[], Iterator[Item]]:
    """Sample blocks at the codec rate -> Pieces, then End with the count (an empty input is an error upstream)."""
    def source() -> Iterator[Item]:
        total, index = 0, 0
        it = iter(blocks)
        while True:
            with lanes.timed("read", index):
                block = next(it, None)
            if block is None:
                break
            block = np.asarray(block, dtype=np.float32).reshape(-1)
            total += block.size
            yield Piece(index, block)
            index += 1
        yield End(index, total, np.zeros(0, dtype=np.float32))
    return source


def codes_source(chunks: Iterable[np.ndarray], total_samples: int) -> Callable[[], Iterator[Item]]:
    """Code chunks [n_cb, frames] -> Pieces, the last chunk riding on End with the original length (its last frame
    may cover fewer than hop samples, so nothing of it may be decoded before the total is known)."""
    def source() -> Iterator[Item]:
        previous: np.ndarray | None = None
        index = 0
        for chunk in chunks:
            if previous is not None:
                yield Piece(index, previous)
                index += 1
            previous = chunk
        yield End(index, total_samples, previous if previous is not None else np.zeros((0, 0), dtype=np.int64))
    return source


def _stepper_stage(name: str, stepper: Stepper, lanes: Lanes, turn: Any, to_input: Callable[[np.ndarray], np.ndarray],
                   from_output: Callable[[np.ndarray], np.ndarray], frames_of: Callable[[int], int]) -> StageFunction:
    def stage(items: Iterator[Item]) -> Iterator[Item]:
        for item in items:
            if isinstance(item, Piece):
                with turn, lanes.timed(name, item.index):
                    out = stepper.push(to_input(item.data))
                if out.shape[1]:
                    yield Piece(item.index, from_output(out))
            else:
                with turn, lanes.timed(name, item.index):
                    if item.data.size:
                        head = stepper.push(to_input(item.data))
                    else:
                        head = np.zeros((stepper.out_channels, 0), np.float32)
                    tail = stepper.finish(frames_of(item.total_samples))
                yield End(item.index, item.total_samples, from_output(np.concatenate([head, tail], axis=1)))
    return stage


def encoder_stage(stepper: Stepper, hop: int, lanes: Lanes, turn: Any = None) -> StageFunction:
    """Samples -> latent rows [frames, latent] aligned with the whole-file encoder."""
    return _stepper_stage("encoder", stepper, lanes, turn or contextlib.nullcontext(),
                          lambda samples: samples.reshape(1, -1), lambda latent: np.ascontiguousarray(latent.T),
                          lambda total: frames_for_length(total, hop))


def decoder_stage(stepper: Stepper, hop: int, lanes: Lanes, turn: Any = None) -> StageFunction:
    """Latent rows -> samples; the End's total trims the output to exactly the input's length."""
    def stage(items: Iterator[Item]) -> Iterator[Item]:
        inner = _stepper_stage("decoder", stepper, lanes, turn or contextlib.nullcontext(),
                               lambda rows: np.ascontiguousarray(rows.T), lambda audio: audio.reshape(-1),
                               lambda total: frames_for_length(total, hop))
        for item in inner(items):
            if isinstance(item, End):
                # The decoder made whole frames; the stream is `total` samples long.
                keep = item.total_samples - (stepper.emitted - item.data.size)
                item = End(item.index, item.total_samples, item.data[:keep])
            yield item
    return stage


def rvq_stage(rvq: NumpyRVQ, lanes: Lanes, mode: str, n_codebooks: int = 0) -> StageFunction:
    """mode "quantize": rows -> codes; "roundtrip": rows -> dequantized rows; "dequantize": codes -> rows."""
    def apply(data: np.ndarray) -> np.ndarray:
        if mode == "dequantize":
            return rvq.dequantize(data) if data.size else np.zeros((0, rvq.dim), np.float32)
        if not data.size:
            return np.zeros((n_codebooks, 0), np.int64) if mode == "quantize" else data.reshape(0, rvq.dim)
        codes = rvq.quantize(data, n_codebooks)
        return codes if mode == "quantize" else rvq.dequantize(codes)

    def stage(items: Iterator[Item]) -> Iterator[Item]:
        for item in items:
            with lanes.timed("rvq", item.index):
                out = apply(item.data)
            yield Piece(item.index, out) if isinstance(item, Piece) else End(item.index, item.total_samples, out)
    return stage


def run_chain(lanes: Lanes, source: Callable[[], Iterator[Item]], stages: list[tuple[str, StageFunction]],
              sink: Callable[[np.ndarray, int], None], source_name: str = "reader") -> int:
    """Run the chain; `sink(data, index)` gets every non-empty block in order. Returns the End's total length."""
    total = [0]

    def consume(item: Item) -> None:
        if isinstance(item, End):
            total[0] = item.total_samples
        if item.data.size:
            sink(item.data, item.index)

    lanes.run(source, stages, consume, source_name=source_name)
    return total[0]
