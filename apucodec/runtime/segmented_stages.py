"""Offline stages for a pooled-norm model: whole-sequence graphs, run on the longest segments memory allows.

A seed (GroupNorm) model's output depends on statistics of the whole input, so offline commands on such a model
(`run`, `encode`, `decode`, `tokenize`, the API's one-shot calls) run its whole-sequence graphs
(apucodec/export/whole_sequence.py) on the whole input, and equal the checkpoint's own whole-file PyTorch forward.
These stages take the engine's place for the encoder and the decoder: each gathers its input until it holds a whole
segment (or the stream ends), runs the graph once on it and passes the result on.

Memory grows with the input, as in PyTorch: every layer's activations for the whole segment are alive at once.
A segment is therefore at most `segment_frames` long: from the caller's `whole_max_seconds`, else from the memory
this machine has available (MEMORY_SHARE of it) divided by the measured peak per second of audio
(BYTES_PER_WIDEST_ACTIVATION x the widest layer's float32 bytes per second; benchmarks/whole_sequence_memory.py).
Longer inputs are cut into segments of that length at frame boundaries, the same boundaries for the encoder and the
decoder (so `run` stays exactly `encode` then `decode`), and each segment has its own statistics: the run says so
once, in its notes. Torch-free.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from apucodec.contract.steps import frames_for_length
from apucodec.model.directory import ModelDir
from apucodec.runtime import engine
from apucodec.runtime.engine import End, Item, Piece, StageFunction
from apucodec.runtime.lanes import Lanes

MEMORY_SHARE = 0.5
# Peak resident memory of a whole-sequence run per second of audio, in units of its widest layer's float32 activation
# per second, with the shared arena that makes these sessions 1.8x faster (runtime/ort_options.py). Measured
# on the 32.4M seed preset, FP32 graphs (benchmarks/whole_sequence_memory.py, VmHWM above the opened sessions):
# 975 MB at 10 s, 5315 MB at 60 s, 14220 MB for 600 s run in segments of 147.9 s, i.e. up to 96 MB per second
# against a widest layer of 11.3 MB/s (8.5x; without the arena it was 45 MB/s). Budgeted with a margin:
BYTES_PER_WIDEST_ACTIVATION = 9.5


def whole_dims(model: ModelDir, role: str) -> dict[str, int] | None:
    """Example sizes of a whole-sequence graph's named time axes (4 frames), for probing a session; None for a
    step graph (static: a named axis there is refused)."""
    entry = model.files.get(role)
    return {"samples": 4 * model.hop, "frames": 4} if entry is not None and entry.whole_sequence else None


def widest_activation_bytes_per_second(config: Any) -> float:
    """float32 bytes per second of audio of the widest layer (channels x its rate), encoder or decoder alike."""
    widest, rate = 0.0, float(config.sample_rate)
    for channels, stride in zip(config.channels, (*config.strides, 1), strict=True):
        widest = max(widest, channels * rate)
        rate /= stride
    return 4.0 * widest


def available_memory() -> int:
    """Bytes this process may still use: MemAvailable where Linux says, else physical memory."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as fh:
            line = next(x for x in fh if x.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def bytes_per_second(config: Any) -> float:
    return BYTES_PER_WIDEST_ACTIVATION * widest_activation_bytes_per_second(config)


def segment_frames(config: Any, max_seconds: float | None = None) -> tuple[int, str]:
    """(Frames per whole-sequence call, why that many)."""
    if max_seconds is not None:
        seconds, why = float(max_seconds), f"the limit asked for ({max_seconds:g} s)"
    else:
        budget = MEMORY_SHARE * available_memory()
        seconds = budget / bytes_per_second(config)
        why = (f"~{bytes_per_second(config) / 1e6:.0f} MB per second of audio, {MEMORY_SHARE:.0%} of the "
               f"{available_memory() / 2**30:.1f} GiB available")
    return max(1, int(seconds * config.frame_rate)), why


class Segmenter:
    """The segment length of one run, and its one note when the input is cut."""

    def __init__(self, config: Any, max_seconds: float | None) -> None:
        self.config = config
        self.frames, self.why = segment_frames(config, max_seconds)
        self.notes: list[str] = []

    def cut(self, total_frames: int) -> None:
        if total_frames > self.frames and not self.notes:
            count = math.ceil(total_frames / self.frames)
            seconds = self.frames / self.config.frame_rate
            self.notes.append(f"whole-sequence: input of {total_frames / self.config.frame_rate:.1f} s processed in "
                              f"{count} segments of at most {seconds:.1f} s ({self.why}); GroupNorm statistics "
                              "are each segment's own, not the whole file's")


def _run(session: Any, x: np.ndarray) -> np.ndarray:
    """A whole-sequence graph: one input (audio or latent), one output."""
    return session.run_feeds({next(iter(session.inputs)): x})[session.outputs[0]][0]


def segment_encoder_stage(session: Any, hop: int, latent_dim: int, lanes: Lanes, segmenter: Segmenter,
                          turn: Any = None) -> StageFunction:
    """Samples -> latent rows [frames, latent], one graph call per segment of `segmenter.frames` frames."""
    turn = turn or contextlib.nullcontext()
    size = segmenter.frames * hop

    def stage(items: Iterator[Item]) -> Iterator[Item]:
        pending: list[np.ndarray] = []
        held = 0
        for item in items:
            pending.append(item.data)
            held += item.data.size
            rows = []
            with turn, lanes.timed("encoder", item.index):
                if held >= size or isinstance(item, End):
                    data = np.concatenate(pending)
                    whole = len(data) // size if not isinstance(item, End) else -(-len(data) // size)
                    if isinstance(item, End):
                        segmenter.cut(frames_for_length(item.total_samples, hop))
                    for k in range(whole):
                        chunk = data[k * size: (k + 1) * size]
                        padded = np.zeros(frames_for_length(chunk.size, hop) * hop, dtype=np.float32)
                        padded[: chunk.size] = chunk
                        rows.append(np.ascontiguousarray(_run(session, padded[None, None]).T))
                    rest = data[whole * size:]
                    pending, held = [rest], rest.size
            out = np.concatenate(rows) if rows else np.zeros((0, latent_dim), np.float32)
            if isinstance(item, End):
                yield End(item.index, item.total_samples, out)
            elif out.size:
                yield Piece(item.index, out)
    return stage


def segment_decoder_stage(session: Any, hop: int, lanes: Lanes, segmenter: Segmenter,
                          turn: Any = None) -> StageFunction:
    """Latent rows -> samples, one graph call per segment; the End's total trims the output to the input's length."""
    turn = turn or contextlib.nullcontext()
    size = segmenter.frames

    def stage(items: Iterator[Item]) -> Iterator[Item]:
        pending: list[np.ndarray] = []
        held, emitted = 0, 0
        for item in items:
            if item.data.size:
                pending.append(item.data)
                held += item.data.shape[0]
            audio = []
            with turn, lanes.timed("decoder", item.index):
                if held >= size or isinstance(item, End):
                    data = np.concatenate(pending) if pending else np.zeros((0, 0), np.float32)
                    whole = held // size if not isinstance(item, End) else -(-held // size)
                    if isinstance(item, End):
                        segmenter.cut(frames_for_length(item.total_samples, hop))
                    for k in range(whole):
                        rows = data[k * size: (k + 1) * size]
                        audio.append(_run(session, np.ascontiguousarray(rows.T)[None]).reshape(-1))
                    rest = data[whole * size:]
                    pending, held = [rest], rest.shape[0]
            out = np.concatenate(audio) if audio else np.zeros(0, np.float32)
            if isinstance(item, End):
                yield End(item.index, item.total_samples, out[: max(item.total_samples - emitted, 0)])
            elif out.size:
                emitted += out.size
                yield Piece(item.index, out)
    return stage


def segmented_chain(codec: Any, lanes: Lanes, kind: str, n: int, notes: list[str]) -> list[tuple[str, StageFunction]]:
    """The stages of `kind` ("run", "encode", "decode") on a CodecEngine's whole-sequence sessions; the run's note
    about segments, if any, lands in `notes`."""
    segmenter = Segmenter(codec.config, codec.settings.whole_max_seconds)
    for session in codec.sessions.values():  # a worker's buffer holds at most one segment of its own
        if getattr(session, "max_frames", None):
            segmenter.frames = min(segmenter.frames, session.max_frames)
    segmenter.notes = notes
    stages: list[tuple[str, StageFunction]] = []
    if kind in ("run", "encode"):
        stages.append(("encoder", segment_encoder_stage(codec.sessions["encoder"], codec.hop, codec.config.latent_dim,
                                                        lanes, segmenter, codec._turn["encoder"])))
        stages.append(("rvq", engine.rvq_stage(codec.rvq, lanes, "roundtrip" if kind == "run" else "quantize", n)))
    else:
        stages.append(("rvq", engine.rvq_stage(codec.rvq, lanes, "dequantize")))
    if kind in ("run", "decode"):
        stages.append(("decoder", segment_decoder_stage(codec.sessions["decoder"], codec.hop, lanes, segmenter,
                                                        codec._turn["decoder"])))
    return stages


def approximation_line(model: ModelDir, step_frames: int | None = None) -> str | None:
    """One line for a pooled-norm model streamed through its step graphs: approximate, and how close (the export's
    measurement at `step_frames`, else at each step size), or None for a model that streams exactly."""
    record = model.manifest.export.approximate if model.manifest.export else None
    if not record:
        return None
    graphs = record.get("graphs", {})
    sizes = sorted({g["step_frames"] for g in graphs.values()})
    shown = [step_frames] if step_frames in sizes else sizes
    parts = []
    for size in shown:
        snr = {stage: graphs.get(f"{stage}.s{size}", {}).get("snr_db") for stage in ("encoder", "decoder")}
        parts.append(f"{size} frames: encoder {snr['encoder']} dB, decoder {snr['decoder']} dB")
    return (f"{model.path}: GroupNorm model: streaming is approximate (running statistics; SNR vs whole-file on "
            f"{record.get('material', '?')}: {'; '.join(parts)}); offline run/encode/decode are exact")
