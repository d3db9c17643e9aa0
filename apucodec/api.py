"""The public Python API: `apucodec.load()` and the `Codec` it returns.

    import apucodec
    codec = apucodec.load()                            # the bundled model; apucodec.load("my-model") for another
    codes = codec.encode(audio, sample_rate=48000)     # any rate, [n] or [n, channels], float or int PCM -> Codes
    audio44 = codec.decode(codes)                      # float32 at codec.sample_rate, the input's length and channels
    codec.encode_file("in.flac", "in.apc"); codec.decode_file("in.apc", "out.wav")
    with codec.stream() as s:                          # live: feed any number of samples, get what is ready
        codes_part = s.encode(chunk)
        samples = s.decode(codes_part)
    tail = s.flush()                                   # the last codes and samples (both lookaheads drained)

One `Codec` holds one precision for every path: a one-shot call and a stream run graphs of the same precision, so
at the default (FP32, the same on any machine) they give the same codes and the same audio. The engine behind it
(apucodec.runtime.codec_runner) is private; the CLI, the dataset encoder and users all open codecs through `load()`.
Errors a caller can tell apart: `InputError` (what was passed), `ModelError` (the model directory),
`PlacementError` (where a stage runs), all `ApucodecError`. Notes (resampling, fallbacks) go through the
`apucodec` logger, never print.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.codes import Codes
from apucodec.errors import ApucodecError, InputError, ModelError
from apucodec.io.arrays import checked_array
from apucodec.io.resample import check_rate, resample, resample_as_stream
from apucodec.runtime.codec_files import CodecFiles
from apucodec.runtime.live_stream import Stream, check_codes
from apucodec.runtime.precision import PRECISIONS, open_engine, stage_precision
from apucodec.runtime.segmented_stages import approximation_line

log = logging.getLogger("apucodec")

LIVE_STEP_FRAMES = 4


class Codec(CodecFiles):
    """An opened model: encode/decode arrays of any rate and channel count, files, and live streams.

    Create it with `load()`; close it with `close()` or a `with` block (its sessions hold memory and, on an NPU,
    a compiled graph).
    """

    def __init__(self, engine: Any, precision: str, load_options: dict[str, Any]) -> None:
        self._engine = engine
        self._precision = precision
        self._options = load_options
        self._streams: dict[int, Any] = {}

    # ---- what it is ----------------------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return int(self._engine.sample_rate)

    @property
    def hop(self) -> int:
        return int(self._engine.hop)

    @property
    def codebook_size(self) -> int:
        return int(self._engine.rvq.codebook_size)

    @property
    def max_codebooks(self) -> int:
        return int(self._engine.rvq.n_codebooks)

    @property
    def model_id(self) -> str:
        return str(self._engine.model.model_id)

    @property
    def model(self) -> Any:
        """The opened model directory (manifest, files, label)."""
        return self._engine.model

    @property
    def config(self) -> Any:
        return self._engine.config

    @property
    def placement(self) -> Any:
        """Where each stage runs (EP asked, EP that ran, graph, precision)."""
        return self._engine.placement

    @property
    def precision(self) -> str:
        """The precision asked for at load(): "fp32", "int8" or "auto"."""
        return self._precision

    def graph_precision(self, stage: str = "encoder") -> str:
        """The precision of the graph `stage` runs ("fp32", "cpu-int8", "npu-int8", "bf16")."""
        return stage_precision(self._engine, stage)[0]

    def graph_sha256(self, stage: str = "encoder") -> str:
        return stage_precision(self._engine, stage)[1]

    def graph_record(self, stage: str = "encoder") -> Any:
        """The manifest entry (FileEntry) of the step graph `stage` runs: its file, step size, precision."""
        return self._engine._session(stage).record

    def n_codebooks(self, requested: int | None = None) -> int:
        try:
            return int(self._engine.n_codebooks(requested))
        except ApucodecError as exc:
            raise InputError(str(exc)) from None

    # ---- arrays --------------------------------------------------------------------------------------------------

    def encode(self, audio: Any, sample_rate: int | None = None, n_codebooks: int | None = None,
               mono: bool = False) -> Codes:
        """Audio [samples] or [samples, channels] (float, or int PCM scaled to [-1, 1)) at `sample_rate` (default:
        the codec's 44100 Hz) -> Codes: [n_codebooks, frames] for one channel, [channels, n_codebooks, frames] for
        more (each channel coded on its own; `mono=True` averages them first). About 86 frames per second."""
        rate = self.sample_rate if sample_rate is None else check_rate(sample_rate)
        n = self.n_codebooks(n_codebooks)
        notes: list[str] = []
        frames = checked_array(audio, "<array>", notes)
        if mono and frames.shape[1] > 1:
            notes.append(f"<array>: {frames.shape[1]} channels downmixed to mono")
            frames = frames.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
        if rate != self.sample_rate:
            notes.append(f"<array>: resampled from {rate} Hz to {self.sample_rate} Hz")
        for note in notes:
            log.info("%s", note)
        per_channel = []
        length = 0
        for channel in frames.T:
            samples = resample_as_stream(np.ascontiguousarray(channel), rate, self.sample_rate)
            length = samples.size
            if not length:
                raise InputError(f"<array>: {channel.size} samples at {rate} Hz are less than one at "
                                 f"{self.sample_rate} Hz")
            per_channel.append(self._engine.encode_array(samples, n)[0])
        array = per_channel[0] if len(per_channel) == 1 else np.stack(per_channel)
        precision, sha = stage_precision(self._engine, "encoder")
        return Codes(array, length, self.sample_rate, rate, frames.shape[0], self.model_id, self.codebook_size,
                     self.hop, precision, sha)

    def decode(self, codes: Codes | np.ndarray, length: int | None = None, sample_rate: int | None = None,
               force: bool = False) -> np.ndarray:
        """Codes -> float32 audio at the codec's rate, exactly `codes.length` samples ([samples], or
        [samples, channels] for multichannel codes); with `sample_rate` (e.g. codes.input_rate) resampled to that
        rate and, at the original input's rate, trimmed to its length. A bare array needs `length=`."""
        if isinstance(codes, Codes):
            if not force:
                codes.check_for(self.model_id, self.max_codebooks, self.hop)
            array, total = codes.array, codes.length
        else:
            if length is None:
                raise InputError("decode: pass Codes, or a code array with length= (samples at the codec rate)")
            if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
                raise InputError(f"decode: length must be a positive number of samples, got {length!r}")
            array, total = codes, int(length)
        if isinstance(codes, Codes) and codes.codebook_size not in (0, self.codebook_size):
            raise InputError(f"codes use codebooks of {codes.codebook_size}, this model's have {self.codebook_size}")
        channels = 1 if np.ndim(array) == 2 else (np.shape(array)[0] if np.ndim(array) == 3 else 1)
        checked = check_codes(array, self.max_codebooks, self.codebook_size, channels)
        if checked.shape[2] != -(-total // self.hop):
            raise InputError(f"codes of {checked.shape[2]} frames do not cover {total} samples")
        out_rate = self.sample_rate if sample_rate is None else check_rate(sample_rate)
        decoded = []
        for channel in checked:
            audio = self._engine.decode_codes(channel, total)[0]
            if out_rate != self.sample_rate:
                audio = resample(audio, self.sample_rate, out_rate)
                if isinstance(codes, Codes) and out_rate == codes.input_rate:
                    audio = np.pad(audio, (0, max(codes.input_length - audio.size, 0)))[: codes.input_length]
            decoded.append(audio)
        return decoded[0] if channels == 1 else np.stack(decoded, axis=1)

    # ---- streams -------------------------------------------------------------------------------------------------

    def stream(self, step_frames: int = LIVE_STEP_FRAMES, n_codebooks: int | None = None,
               sample_rate: int | None = None, channels: int = 1) -> Stream:
        """A live stream at `step_frames` per step (the model's live step by default: 4 frames, 46 ms), at this
        Codec's precision; input at `sample_rate` (default the codec's), `channels` coded independently."""
        from apucodec.runtime.channel_stream import ChannelStream

        rate = self.sample_rate if sample_rate is None else check_rate(sample_rate, "stream")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or not 1 <= channels <= 64:
            raise InputError(f"stream: channels must be 1..64, got {channels!r}")
        n = self.n_codebooks(n_codebooks)
        engine = self._engine_at(step_frames)
        parts = []
        for _ in range(int(channels)):
            encoder = engine.stepper("encoder")
            decoder = engine.stepper("decoder", lead_frames=encoder.delay % step_frames)
            parts.append(ChannelStream(encoder, decoder, engine.rvq, n, self.hop))
        return Stream(parts, rate, self.sample_rate, self.codebook_size)

    def _engine_at(self, step_frames: int) -> Any:
        if isinstance(step_frames, bool) or not isinstance(step_frames, (int, np.integer)) or step_frames < 1:
            raise InputError(f"stream: step_frames must be a positive integer, got {step_frames!r}")
        engine = self._engine
        if step_frames == engine.step_frames("encoder") and "decoder" in engine.sessions:
            return engine
        if step_frames not in self._streams:
            self._streams[step_frames] = open_engine(self.model, self._precision, self._options,
                                                     step_frames=int(step_frames))
            approximate = approximation_line(self.model, int(step_frames))
            if approximate:  # a GroupNorm model: its live steps only approximate the exact offline calls
                log.warning(approximate)
        return self._streams[step_frames]

    def algorithmic_latency(self, step_frames: int = LIVE_STEP_FRAMES) -> float:
        """Seconds from a sample entering a stream to its decoded sample leaving it: both lookaheads + one step."""
        return (self.model.streaming("encoder").delay_samples + self.model.streaming("decoder").delay_samples
                + step_frames * self.hop) / self.sample_rate

    # ---- lifetime ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the sessions (and stage workers); the Codec cannot be used afterwards."""
        for engine in [self._engine, *self._streams.values()]:
            for session in getattr(engine, "sessions", {}).values():
                close = getattr(session, "close", None)
                if close is not None:
                    close()
        self._streams.clear()

    def __enter__(self) -> Codec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(model: str | Path | None = None, *, precision: str = "fp32", int8_floor: float | None = None,
         eps: dict[str, str | Sequence[str]] | None = None, workers: dict[str, str] | None = None,
         threads: int = 0, strict: bool = False, step_frames: int | None = None,
         stages: tuple[str, ...] = ("encoder", "decoder"), encoder_ep: str | None = None,
         decoder_ep: str | None = None, **engine_options: Any) -> Codec:
    """Open a model directory: `model` (default: $APUCODEC_MODEL, ./apucodec-model, else the bundled model).

    precision: "fp32" (default: FP32 graphs on every stage and path, the same codes on any machine), "int8" (INT8
        graphs where the model has them for the EP: the NPU's, the CPU's; a stage or a stream step without one is a
        ModelError), or "auto" (the fastest graph each stage has at each step size; a stream may then run another
        precision than a one-shot call, which is logged).
    int8_floor: dBFS under which an INT8 step runs on the FP32 graph (default -45; -inf: never).
    eps: {"encoder": "vitisai,cpu", "decoder": "webgpu,cpu"}; EPs follow the runtime's preferences otherwise.
    workers: {"encoder": "/path/to/python"} runs a stage in a worker process.
    threads: intra-op threads per session (0: onnxruntime's default). strict: a fallback is a PlacementError.
    step_frames: the step graphs one-shot calls run (default: the model's largest).
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InputError(f"threads must be a non-negative integer, got {threads!r}")
    eps = dict(eps or {})
    from apucodec.runtime.precision import ENGINE_OPTIONS

    strange = set(engine_options) - set(ENGINE_OPTIONS)
    if strange:
        raise InputError(f"load() got an unknown option {sorted(strange)[0]!r}")
    unknown = set(eps) - {"encoder", "decoder"}
    if unknown:
        raise InputError(f"eps: unknown stage {sorted(unknown)[0]!r} (encoder, decoder)")
    if encoder_ep is not None:
        eps["encoder"] = encoder_ep
    if decoder_ep is not None:
        eps["decoder"] = decoder_ep
    options = dict(int8_floor=int8_floor, eps=eps, workers=dict(workers or {}), threads=threads, strict=strict,
                   stages=tuple(stages), **engine_options)
    from apucodec.model.directory import load_model_dir
    from apucodec.model.location import locate_model

    try:
        model_dir = load_model_dir(locate_model(model).path)
    except InputError:
        raise
    except ApucodecError as exc:
        raise ModelError(str(exc)) from None
    engine = open_engine(model_dir, precision, options, step_frames=step_frames)
    return Codec(engine, precision, options)
