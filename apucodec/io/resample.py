"""Sample rates: which ones apucodec reads, and the one resampler (soxr at HQ quality), whole or streaming.

Every rate conversion in the package goes through here — file reads, arrays handed to the API, decoded audio
written at the input's rate, the listening page's 48 kHz ViSQOL copies — so "what the codec hears" at a rate other
than its own is defined once. soxr is imported on first use: a workflow at the model's own rate never needs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apucodec.errors import InputError

# Sample rates apucodec reads. A header is a few bytes an attacker controls: a 400 KB WAV that says 1 Hz asks the
# resampler for 44100 output samples per input sample (16.5 GB). Real audio lives between telephone-band 8 kHz
# and 768 kHz studio converters; these bounds leave room on both sides and refuse the rest before resampling.
MIN_RATE = 1000
MAX_RATE = 1_000_000


def check_rate(rate: Any, name: str = "<array>") -> int:
    """`rate` as an int if it is a sample rate apucodec reads (checked before a resampler allocates for it), else
    one InputError line naming `name`."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
        raise InputError(f"{name}: sample rate must be an integer from {MIN_RATE} to {MAX_RATE} Hz, got {rate!r}")
    if not MIN_RATE <= int(rate) <= MAX_RATE:
        raise InputError(f"{name}: sample rate {int(rate)} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    return int(rate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """A whole mono signal from `rate_in` to `rate_out` (float32; the input itself when the rates agree)."""
    if rate_in == rate_out:
        return audio
    import soxr

    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


class StreamResampler:
    """soxr's ResampleStream at HQ quality, or a pass-through when the rates agree."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = None
        if rate_in != rate_out:
            import soxr

            self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return block
        return self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, dtype=np.float32), last=True)


def resample_as_stream(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """The streaming resampler run over a whole signal in one piece: the same samples a live stream at `rate_in`
    feeds its encoder, so one-shot and streamed encodes of one input agree."""
    if rate_in == rate_out:
        return samples
    resampler = StreamResampler(rate_in, rate_out)
    return np.concatenate([resampler.process(samples), resampler.flush()]).astype(np.float32, copy=False)
