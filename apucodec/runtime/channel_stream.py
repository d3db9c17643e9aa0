"""Live streaming: feed any number of samples, get the codes and audio that are ready.

A `ChannelStream` holds one encoder Stepper and one decoder Stepper (zero state: a new stream) over sessions at a live
step size, and calls them synchronously in the caller's thread, so a real-time program (a microphone callback, a network
loop) decides its own threading. Codes come out only for whole frames, so the decoder never sees a frame whose end
is not known; `flush()` drains both lookaheads at the end, after which the concatenated output has exactly the
input's length and equals one-shot `decode(encode(x))` at every sample.

The decoder's steps are phased to start where the encoder's output lands (a lead of `encoder delay mod step`
frames), so the algorithmic latency is exactly encoder lookahead + decoder lookahead + one step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from apucodec.errors import ApucodecError
from apucodec.runtime.rvq import NumpyRVQ
from apucodec.runtime.stepper import Stepper


class ChannelFlushed(NamedTuple):
    codes: np.ndarray   # [n_codebooks, frames] the last codes (the final, possibly partial, frame included)
    audio: np.ndarray   # [samples] the rest of the decoded audio


class ChannelStream:
    """encode(samples) -> codes ready; decode(codes) -> samples ready; flush() -> the rest of both."""

    def __init__(self, encoder: Stepper, decoder: Stepper, rvq: NumpyRVQ, n_codebooks: int, hop: int) -> None:
        self.encoder, self.decoder, self.rvq = encoder, decoder, rvq
        self.n_codebooks, self.hop = n_codebooks, hop
        self.samples_in = 0
        self.frames_decoded = 0
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise ApucodecError("this stream was flushed; open a new one with codec.stream()")

    def encode(self, samples: np.ndarray) -> np.ndarray:
        """Mono float32 samples at the codec's rate (any count) -> codes [n_codebooks, k] for the frames now
        complete (k may be 0)."""
        self._check_open()
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(samples)):
            raise ApucodecError("stream input contains NaN or Inf samples")
        self.samples_in += samples.size
        latent = self.encoder.push(samples[None])
        return self.rvq.quantize(np.ascontiguousarray(latent.T), self.n_codebooks) if latent.shape[1] else \
            np.zeros((self.n_codebooks, 0), dtype=np.int32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes [n, k] of whole frames (as `encode` returns them) -> the samples now ready."""
        self._check_open()
        codes = np.asarray(codes)
        if codes.ndim != 2 or not codes.shape[1]:
            return np.zeros(0, dtype=np.float32)
        self.frames_decoded += codes.shape[1]
        return self.decoder.push(self.rvq.dequantize(codes).T).reshape(-1)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """encode then decode: the voice-link loop in one call."""
        return self.decode(self.encode(samples))

    def flush(self, last: np.ndarray | None = None) -> ChannelFlushed:
        """End of input: the last codes, and (if this stream decodes) the rest of the audio, trimmed so that all
        decoded output together is exactly as long as all input. `last`: samples that end the input (a resampler's
        tail), encoded here so that their codes are decoded with the rest."""
        self._check_open()
        self.closed = True
        head = np.zeros((self.encoder.out_channels, 0), np.float32)
        if last is not None and last.size:
            last = np.asarray(last, dtype=np.float32).reshape(-1)
            self.samples_in += last.size
            head = self.encoder.push(last[None])
        latent = np.concatenate([head, self.encoder.finish()], axis=1)
        codes = self.rvq.quantize(np.ascontiguousarray(latent.T), self.n_codebooks) if latent.shape[1] else \
            np.zeros((self.n_codebooks, 0), dtype=np.int32)
        encoded_before = self.encoder.emitted - codes.shape[1]
        if not self.samples_in or (encoded_before and not self.frames_decoded):
            return ChannelFlushed(codes, np.zeros(0, dtype=np.float32))  # nothing in, or an encode-only stream
        if self.frames_decoded != encoded_before:
            raise ApucodecError("flush: decode() was not given every code encode() returned, in order")
        head = self.decoder.push(self.rvq.dequantize(codes).T).reshape(-1) if codes.shape[1] else \
            np.zeros(0, dtype=np.float32)
        emitted_before = self.decoder.emitted - head.size
        tail = self.decoder.finish(self.frames_decoded + codes.shape[1]).reshape(-1)
        audio = np.concatenate([head, tail])
        return ChannelFlushed(codes, audio[: max(self.samples_in - emitted_before, 0)])

    def __enter__(self) -> ChannelStream:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving a `with` block ends nothing: the stream holds no resources, and `flush()` after the block (as
        the README shows) still returns the tail."""
