"""Static windows for the NPU/GPU graphs: cutting, padding and stitching, streaming.

Both graphs take one static shape. With K chunk frames and C context frames (W = C + K + C), window j covers frames
[jK - C, jK + K + C): the encoder sees those frames' samples, the decoder those frames' quantized latents. Only the
chunk is kept — frames [C, C + K) of the encoder's output, samples [C*hop, (C + K)*hop) of the decoder's — so with
context >= the receptive field every kept value equals the whole-file network's, except near the file's ends, where
the window holds zeros instead of the whole-file convolutions' zero padding.

The input is padded to F = ceil(length / hop) frames; the output is trimmed back to exactly `length` samples.
Everything is incremental (`push` blocks as they arrive, `finish` with the total), so memory is one window per
stage whatever the file's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from apucodec.model_dir import WindowGeometry


@dataclass
class EncoderWindow:
    index: int
    samples: np.ndarray   # [window_samples] float32
    keep_frames: int      # chunk frames that are real (K, fewer in the last window)


@dataclass
class DecoderWindow:
    index: int
    latent: np.ndarray    # [latent_dim, window_frames] float32, the decoder graph's layout
    keep_samples: int     # chunk samples to keep (K * hop, fewer in the last window)


def frames_for_length(length: int, hop: int) -> int:
    """Frames that cover `length` samples (the last one zero-padded)."""
    return -(-length // hop)


def window_count(length: int, geometry: WindowGeometry) -> int:
    """Windows for `length` samples."""
    return -(-frames_for_length(length, geometry.hop) // geometry.chunk_frames)


class _Stream:
    """A growing 2-D buffer of rows with a global start offset: rows before the next window are dropped."""

    def __init__(self, width: int | None) -> None:
        self._shape_tail = () if width is None else (width,)
        self.data = np.zeros((0, *self._shape_tail), dtype=np.float32)
        self.start = 0      # global index of data[0]
        self.received = 0   # rows pushed so far

    def push(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float32)
        if rows.shape[1:] != self._shape_tail:
            raise ValueError(f"expected rows of shape {self._shape_tail}, got {rows.shape[1:]}")
        self.data = np.concatenate([self.data, rows]) if len(self.data) else rows.copy()
        self.received += len(rows)

    def take(self, begin: int, end: int, valid_end: int) -> np.ndarray:
        """Rows [begin, end) in global indices, zeros outside [0, valid_end)."""
        out = np.zeros((end - begin, *self._shape_tail), dtype=np.float32)
        lo, hi = max(begin, 0), min(end, valid_end)
        if hi > lo:
            out[lo - begin: hi - begin] = self.data[lo - self.start: hi - self.start]
        return out

    def drop_before(self, index: int) -> None:
        cut = min(max(index - self.start, 0), len(self.data))
        if cut:
            self.data = self.data[cut:]
            self.start += cut


class SampleWindower:
    """Sample blocks at the codec rate in, encoder windows out."""

    def __init__(self, geometry: WindowGeometry) -> None:
        self.geometry = geometry
        self._stream = _Stream(None)
        self._next = 0

    @property
    def samples_received(self) -> int:
        return self._stream.received

    def _window(self, j: int, keep_frames: int, valid_end: int) -> EncoderWindow:
        g = self.geometry
        begin = (j * g.chunk_frames - g.context_frames) * g.hop
        samples = self._stream.take(begin, begin + g.window_samples, valid_end)
        self._stream.drop_before(begin + g.chunk_samples)  # the next window starts one chunk later
        return EncoderWindow(j, samples, keep_frames)

    def push(self, block: np.ndarray) -> Iterator[EncoderWindow]:
        """Add samples; yield every window whose samples have all arrived."""
        g = self.geometry
        self._stream.push(np.asarray(block, dtype=np.float32).reshape(-1))
        while ((self._next + 1) * g.chunk_frames + g.context_frames) * g.hop <= self._stream.received:
            yield self._window(self._next, g.chunk_frames, self._stream.received)
            self._next += 1

    def finish(self) -> Iterator[EncoderWindow]:
        """No more samples: yield the remaining windows, the last one zero-padded."""
        g = self.geometry
        total_frames = frames_for_length(self._stream.received, g.hop)
        while self._next * g.chunk_frames < total_frames:
            keep = min(g.chunk_frames, total_frames - self._next * g.chunk_frames)
            yield self._window(self._next, keep, self._stream.received)
            self._next += 1


def kept_frames(encoder_output: np.ndarray, window: EncoderWindow, geometry: WindowGeometry) -> np.ndarray:
    """The chunk's latent frames as rows [keep_frames, latent_dim] from an encoder output [1, latent, W]."""
    c = geometry.context_frames
    return np.ascontiguousarray(encoder_output[0, :, c: c + window.keep_frames].T)


class FrameWindower:
    """Quantized latent rows [frames, latent_dim] in, decoder windows out."""

    def __init__(self, geometry: WindowGeometry, latent_dim: int) -> None:
        self.geometry = geometry
        self._stream = _Stream(latent_dim)
        self._next = 0

    @property
    def frames_received(self) -> int:
        return self._stream.received

    def _window(self, j: int, keep_samples: int, valid_end: int) -> DecoderWindow:
        g = self.geometry
        begin = j * g.chunk_frames - g.context_frames
        rows = self._stream.take(begin, begin + g.window_frames, valid_end)
        self._stream.drop_before(begin + g.chunk_frames)
        return DecoderWindow(j, np.ascontiguousarray(rows.T), keep_samples)

    def push(self, rows: np.ndarray) -> Iterator[DecoderWindow]:
        g = self.geometry
        self._stream.push(rows)
        # The chunk's last frame must be followed by another one: only then is it known to be a whole frame (the
        # file's last frame may hold fewer than hop samples, and its window must be trimmed in `finish`).
        while (self._next + 1) * g.chunk_frames + max(g.context_frames, 1) <= self._stream.received:
            yield self._window(self._next, g.chunk_samples, self._stream.received)
            self._next += 1

    def finish(self, total_samples: int) -> Iterator[DecoderWindow]:
        """No more frames; `total_samples` is the original length, which trims the last window."""
        g = self.geometry
        total_frames = self._stream.received
        if frames_for_length(total_samples, g.hop) != total_frames:
            raise ValueError(f"{total_frames} frames do not cover {total_samples} samples")
        while self._next * g.chunk_frames < total_frames:
            keep = min(g.chunk_samples, total_samples - self._next * g.chunk_samples)
            yield self._window(self._next, keep, total_frames)
            self._next += 1


def kept_samples(decoder_output: np.ndarray, window: DecoderWindow, geometry: WindowGeometry) -> np.ndarray:
    """The chunk's samples [keep_samples] from a decoder output [1, 1, window_samples]."""
    c = geometry.context_samples
    return np.ascontiguousarray(decoder_output.reshape(-1)[c: c + window.keep_samples])


def sample_windows(audio: np.ndarray, geometry: WindowGeometry) -> list[EncoderWindow]:
    """Every encoder window of a whole signal (for tests and in-memory use)."""
    windower = SampleWindower(geometry)
    return [*windower.push(audio), *windower.finish()]


def frame_windows(rows: np.ndarray, total_samples: int, geometry: WindowGeometry) -> list[DecoderWindow]:
    """Every decoder window of a whole frame stream [frames, latent_dim]."""
    windower = FrameWindower(geometry, rows.shape[1])
    return [*windower.push(rows), *windower.finish(total_samples)]
