"""The public Python API: `apucodec.load()` and the `Codec` it returns.

    import apucodec
    codec = apucodec.load()                            # the bundled model; apucodec.load("my-model") for another
    codes = codec.encode(audio, sample_rate=48000)     # any rate, mono or [n, channels], float or int PCM -> Codes
    audio44 = codec.decode(codes)                      # float32 at codec.sample_rate, exactly the input's length
    codec.encode_file("in.flac", "in.apc"); codec.decode_file("in.apc", "out.wav")
    with codec.stream(step_frames=4) as s:             # live: feed any number of samples, get what is ready
        codes_part = s.encode(chunk)
        samples = s.decode(codes_part)
    tail = s.flush()                                   # the last codes and samples (both lookaheads drained)

Names follow faster-whisper / sherpa-onnx (load a model, hand it arrays of any rate). Notes (downmix, resampling,
fallbacks) go through the `apucodec` logger, never print.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from apucodec.audio_input import to_codec_input
from apucodec.codes import Codes
from apucodec.errors import ApucodecError
from apucodec.model_dir import load_model_dir
from apucodec.model_location import locate_model
from apucodec.runtime import pipeline
from apucodec.runtime.audio_stream import StreamResampler
from apucodec.runtime.providers import SessionSettings
from apucodec.runtime.stream import Flushed, Stream
from apucodec.runtime.whole_sequence import approximation_line

log = logging.getLogger("apucodec")

LIVE_STEP_FRAMES = 4


class ResampledStream(Stream):
    """A Stream whose input arrives at another rate: resampled on the fly (soxr's streaming resampler)."""

    def __init__(self, inner: Stream, input_rate: int, codec_rate: int) -> None:
        self.__dict__.update(inner.__dict__)
        self._resampler = StreamResampler(input_rate, codec_rate)

    def encode(self, samples: np.ndarray) -> np.ndarray:
        return super().encode(self._resampler.process(np.asarray(samples, dtype=np.float32).reshape(-1)))

    def flush(self) -> Flushed:
        last = super().encode(self._resampler.flush())
        flushed = super().flush()
        if not last.shape[1]:
            return flushed
        return Flushed(np.concatenate([last, flushed.codes], axis=1), flushed.audio)


class Codec(pipeline.Codec):
    """An opened model: encode/decode arrays of any rate, files, and live streams. Create it with `load()`."""

    def encode(self, audio: np.ndarray, sample_rate: int | None = None, n_codebooks: int | None = None) -> Codes:
        """Audio [samples] or [samples, channels] (float, or int PCM scaled to [-1, 1)) at `sample_rate` (default:
        the codec's 44100 Hz) -> Codes ([n_codebooks, frames], about 86 frames per second)."""
        rate = self.sample_rate if sample_rate is None else sample_rate
        samples, input_length = to_codec_input(audio, rate, self.sample_rate)
        array, _ = self.encode_array(samples, n_codebooks)
        return Codes(array, samples.size, self.sample_rate, int(rate), input_length, self.model.model_id)

    def decode(self, codes: Codes | np.ndarray, length: int | None = None, sample_rate: int | None = None,
               force: bool = False) -> np.ndarray:
        """Codes -> float32 mono audio at the codec's rate, exactly `codes.length` samples; with `sample_rate`
        (e.g. codes.input_rate) resampled to that rate and trimmed to the original input's length."""
        if isinstance(codes, Codes):
            if not force:
                codes.check_for(self.model.model_id, self.rvq.n_codebooks, self.hop)
            array, total = codes.array, codes.length
        else:
            if length is None:
                raise ApucodecError("decode: pass Codes, or a code array with length= (samples at the codec rate)")
            array, total = np.asarray(codes), int(length)
        audio, _ = self.decode_codes(array, total)
        if sample_rate is None or sample_rate == self.sample_rate:
            return audio
        import soxr

        out = soxr.resample(audio, self.sample_rate, sample_rate, quality="HQ").astype(np.float32)
        if isinstance(codes, Codes) and sample_rate == codes.input_rate:
            out = np.pad(out, (0, max(codes.input_length - out.size, 0)))[: codes.input_length]
        return out

    def stream(self, step_frames: int = LIVE_STEP_FRAMES, n_codebooks: int | None = None,
               sample_rate: int | None = None) -> Stream:
        """A live stream at `step_frames` per step (the model's live step by default: 4 frames, 46 ms)."""
        n = self.n_codebooks(n_codebooks)
        engine = self if step_frames == self.step_frames("encoder") and "decoder" in self.sessions else \
            self._engine_at(step_frames)
        encoder = engine.stepper("encoder")
        decoder = engine.stepper("decoder", lead_frames=encoder.delay % step_frames)
        stream = Stream(encoder, decoder, self.rvq, n, self.hop)
        if sample_rate is not None and sample_rate != self.sample_rate:
            return ResampledStream(stream, sample_rate, self.sample_rate)
        return stream

    def _engine_at(self, step_frames: int) -> pipeline.Codec:
        cache = self.__dict__.setdefault("_engines", {})
        if step_frames not in cache:
            cache[step_frames] = pipeline.Codec(self.model, self.settings, warn=None, step_frames=step_frames)
            approximate = approximation_line(self.model, step_frames)
            if approximate:  # a GroupNorm model: its live steps only approximate the exact offline calls
                log.warning(approximate)
        return cache[step_frames]

    def algorithmic_latency(self, step_frames: int = LIVE_STEP_FRAMES) -> float:
        """Seconds from a sample entering a stream to its decoded sample leaving it: both lookaheads + one step."""
        return (self.model.streaming("encoder").delay_samples + self.model.streaming("decoder").delay_samples
                + step_frames * self.hop) / self.sample_rate


def load(model: str | Path | None = None, *, encoder_ep: str | None = None, decoder_ep: str | None = None,
         strict: bool = False, threads: int = 0, step_frames: int | None = None) -> Codec:
    """Open a model directory: `model` (default: $APUCODEC_MODEL, ./apucodec-model, else the bundled model).

    EPs follow the runtime's preferences (encoder: NPU then CPU; decoder: WebGPU, MIGraphX, CUDA, DirectML, CPU)
    unless named; falling back is logged, and `strict=True` makes it an error.
    """
    from apucodec.runtime.providers import STAGE_PREFERENCES, parse_ep_list

    settings = SessionSettings(
        encoder_eps=parse_ep_list(encoder_ep, "encoder") if encoder_ep else STAGE_PREFERENCES["encoder"],
        decoder_eps=parse_ep_list(decoder_ep, "decoder") if decoder_ep else STAGE_PREFERENCES["decoder"],
        strict=strict, threads=threads)
    return Codec(load_model_dir(locate_model(model).path), settings, warn=log.warning, step_frames=step_frames)
