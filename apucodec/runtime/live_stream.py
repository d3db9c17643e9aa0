"""The public live stream: `Codec.stream()` — the same input checks as one-shot `encode`, any rate, any channels.

`apucodec.runtime.channel_stream.ChannelStream` is one mono signal at the codec's rate, fed float32. A caller hands
a stream what it hands `encode`: int16 from a sound card (scaled like one-shot input, not used raw), [n, channels]
frames, 48 kHz audio. This wrapper checks and converts each piece exactly as `Codec.encode` converts a whole array,
so a stream fed any piece sizes gives the codes and audio one-shot `encode`/`decode` give:

* PCM integers are scaled, NaN/Inf refused, the channel count checked against the one the stream was opened for;
* each channel is its own runtime stream (channels are coded independently, as one-shot does);
* a rate other than the codec's goes through soxr's streaming resampler, whose output does not depend on how the
  input was cut (and equals its one-shot resampler): its tail is encoded by `flush()` together with the rest;
* codes given to `decode` are checked (integer dtype, shape, 0 <= code < codebook size) before they reach a step.

Audio out is at the codec's rate: [samples] for one channel, [samples, channels] for more.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np

from apucodec.errors import InputError
from apucodec.io.arrays import checked_array
from apucodec.io.resample import StreamResampler
from apucodec.runtime.channel_stream import ChannelStream

log = logging.getLogger("apucodec")


class Flushed(NamedTuple):
    codes: np.ndarray   # [n_codebooks, frames] (or [channels, n_codebooks, frames]): the last codes
    audio: np.ndarray   # [samples] (or [samples, channels]): the rest of the decoded audio


def check_codes(codes: Any, n_codebooks: int, codebook_size: int, channels: int, name: str = "codes") -> np.ndarray:
    """Codes as [channels, n, frames] int64, or one InputError line: a float or bool array, a code of -1 or one at
    or beyond the codebook size, too many codebooks or the wrong channel count never reach a step graph."""
    array = np.asarray(codes)
    if array.dtype == np.bool_ or array.dtype.kind not in "iu":
        raise InputError(f"{name}: dtype {array.dtype} is not an integer code array")
    if array.ndim == 2 and channels == 1:
        array = array[None]
    if array.ndim != 3 or array.shape[0] != channels:
        want = "[n_codebooks, frames]" if channels == 1 else f"[{channels}, n_codebooks, frames]"
        raise InputError(f"{name}: shape {list(array.shape)}, expected {want}")
    if not 1 <= array.shape[1] <= n_codebooks:
        raise InputError(f"{name}: {array.shape[1]} codebooks, this codec has 1..{n_codebooks}")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= codebook_size:
            bad = low if low < 0 else high
            raise InputError(f"{name}: code {bad} is outside the codebook (0..{codebook_size - 1})")
    return array.astype(np.int64, copy=False)


class Stream:
    """encode(samples) -> codes ready; decode(codes) -> samples ready; process(samples) -> both; flush() -> the rest.

    Usable as a context manager; leaving the block does not discard anything, `flush()` after it works.
    """

    def __init__(self, channels: list[ChannelStream], input_rate: int, codec_rate: int, codebook_size: int) -> None:
        self._channels = channels
        self.channels = len(channels)
        self.input_rate, self.sample_rate = input_rate, codec_rate
        self.n_codebooks = channels[0].n_codebooks
        self.codebook_size = codebook_size
        self._resamplers = [StreamResampler(input_rate, codec_rate) for _ in channels]
        self._flushed = False

    def _check_open(self) -> None:
        if self._flushed:
            raise InputError("this stream was flushed; open a new one with codec.stream()")

    def _shape_codes(self, per_channel: list[np.ndarray]) -> np.ndarray:
        return per_channel[0] if self.channels == 1 else np.stack(per_channel)

    def _shape_audio(self, per_channel: list[np.ndarray]) -> np.ndarray:
        if self.channels == 1:
            return per_channel[0]
        size = min(a.size for a in per_channel)  # equal by construction; min guards a mismatch from showing as junk
        return np.stack([a[:size] for a in per_channel], axis=1)

    def encode(self, samples: Any) -> np.ndarray:
        """Samples at the stream's input rate ([n], or [n, channels]; float or int PCM) -> the codes of the frames
        now complete: [n_codebooks, k] (or [channels, n_codebooks, k]); k may be 0."""
        self._check_open()
        notes: list[str] = []
        frames = checked_array(samples, "stream input", notes) if np.size(samples) else \
            np.zeros((0, self.channels), np.float32)
        if frames.shape[1] != self.channels:
            raise InputError(f"stream input: {frames.shape[1]} channels, this stream was opened for "
                             f"{self.channels} (codec.stream(channels={frames.shape[1]}), or downmix first)")
        out = []
        for index, channel in enumerate(self._channels):
            out.append(channel.encode(self._resamplers[index].process(np.ascontiguousarray(frames[:, index]))))
        return self._shape_codes(out)

    def decode(self, codes: Any) -> np.ndarray:
        """Codes as `encode` returns them (whole frames, in order) -> the samples now ready."""
        self._check_open()
        array = check_codes(codes, self.n_codebooks, self.codebook_size, self.channels)
        return self._shape_audio([channel.decode(array[i]) for i, channel in enumerate(self._channels)])

    def process(self, samples: Any) -> np.ndarray:
        """encode then decode: the voice-link loop in one call."""
        return self.decode(self.encode(samples))

    def flush(self) -> Flushed:
        """End of input: the last codes (the resampler's tail included) and the rest of the audio, trimmed so that
        all decoded output together is exactly as long as all input at the codec's rate."""
        self._check_open()
        self._flushed = True
        done = [channel.flush(self._resamplers[i].flush()) for i, channel in enumerate(self._channels)]
        return Flushed(self._shape_codes([d.codes for d in done]), self._shape_audio([d.audio for d in done]))

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
