"""The codec at inference: reader -> encoder -> RVQ -> decoder -> writer, overlapped, streaming, timed.

`Codec` opens the sessions once (placement decided and reported at open) and then runs any number of inputs:

    codec = Codec.open("apucodec-model")                 # or Codec(load_model_dir(...), SessionSettings(...))
    result = codec.run_file("in.flac", "out.wav")        # RunResult: timings per stage and window, placement
    codec.encode_file("in.wav", "in.apc"); codec.decode_file("in.apc", "out.wav")
    audio, result = codec.run_array(samples)             # in memory, same lanes (tests, bench)

`run` is exactly `encode` then `decode`: the same windows, the same codes, the same decoder windows — only the
.apc file in between is skipped — so an encode/decode round trip reproduces `run` bit for bit.

Every file output goes through a temp file renamed at the end, so a failure or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.audio import AudioInfo, check_finite
from apucodec.errors import ApucodecError
from apucodec.model_dir import ModelDir, load_model_dir
from apucodec.outputs import open_binary_output  # h16: unnamed temp outputs, `-`, devices
from apucodec.runtime.audio_stream import AudioWriter, open_audio_output, open_input, read_blocks
from apucodec.runtime.bitstream import ApcHeader, ApcReader, ApcWriter, open_apc
from apucodec.runtime.lanes import Lanes, StageTiming
from apucodec.runtime.providers import PlacementReport, SessionSettings, StageSession, Warn, open_sessions, warn_stderr
from apucodec.runtime.rvq import NumpyRVQ
from apucodec.runtime.windows import (
    FrameWindower,
    SampleWindower,
    frames_for_length,
    kept_frames,
    kept_samples,
    window_count,
)

Progress = Callable[[int], None]  # called with the number of codec-rate samples just finished


@dataclass
class RunResult:
    """What one run did and how long each part took (the raw material of `bench`)."""

    kind: str                   # "run" | "encode" | "decode"
    samples: int                # length at the codec rate (= output length unless resampled back)
    sample_rate: int
    frames: int
    windows: int
    n_codebooks: int
    bitrate: float              # bits per second of the code stream
    wall_seconds: float
    timings: list[StageTiming]
    placement: PlacementReport
    model_id: str
    queue_depth: int
    notes: list[str] = field(default_factory=list)  # e.g. "2 channels downmixed to mono"

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def rtf(self) -> float:
        """Real-time factor: wall seconds per audio second (below 1 is faster than real time)."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else float("inf")

    def stage_seconds(self) -> dict[str, float]:
        """Busy seconds per stage (summed over windows)."""
        totals: dict[str, float] = {}
        for t in self.timings:
            totals[t.stage] = totals.get(t.stage, 0.0) + t.seconds
        return totals

    def summary(self, model_label: str | None = None) -> str:
        model = f", model {model_label}" if model_label else f", model {self.model_id}"
        return (f"{self.kind}: {self.audio_seconds:.2f} s of audio in {self.wall_seconds:.2f} s (RTF {self.rtf:.3f}, "
                f"{1 / self.rtf if self.rtf else float('inf'):.1f}x real time), {self.bitrate / 1000:.2f} kbps "
                f"({self.n_codebooks} codebooks); {self.placement.summary()}{model}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "samples": self.samples, "sample_rate": self.sample_rate, "frames": self.frames,
                "windows": self.windows, "n_codebooks": self.n_codebooks, "bitrate": self.bitrate,
                "wall_seconds": self.wall_seconds, "audio_seconds": self.audio_seconds, "rtf": self.rtf,
                "model_id": self.model_id, "queue_depth": self.queue_depth, "placement": self.placement.to_dict(),
                "timings": [t.__dict__ for t in self.timings], "notes": list(self.notes)}


@dataclass
class _Totals:
    """Set by the first lane when its input ends; read by later lanes after they see the end (queue ordering)."""

    samples: int = 0


def input_notes(info: AudioInfo, rate: int) -> list[str]:
    """What happens to an input before the codec hears it (downmix, resampling), so the user is told."""
    notes = []
    if info.channels > 1:
        notes.append(f"{info.path}: {info.channels} channels downmixed to mono")
    if info.sample_rate != rate:
        notes.append(f"{info.path}: resampled from {info.sample_rate} Hz to {rate} Hz")
    return notes


def processor_turns(placement: PlacementReport) -> dict[str, Any]:
    """Per graph stage, a lock shared with every other stage placed on the same execution provider.

    The lanes overlap so that the NPU, CPU and GPU work on different windows at once. Two graph sessions on the
    same processor gain nothing from that: on the CPU EP each session's thread pool already uses every core, and
    running both at once oversubscribes them (apucodec bench, default model, 2 cores: pipelined RTF 0.82-0.89
    overlapping vs 0.72-0.76 one after the other). So such stages take turns, while the RVQ lane and file I/O
    still overlap with them; stages on different processors never wait for each other.
    """
    locks: dict[str, threading.Lock] = {}
    turns: dict[str, Any] = {}
    for stage in placement.stages:
        if stage.stage in ("encoder", "decoder"):
            turns[stage.stage] = locks.setdefault(stage.ran_on, threading.Lock())
    for stage in ("encoder", "decoder"):
        turns.setdefault(stage, contextlib.nullcontext())
    return turns


def check_distinct(input_path: Path, output_path: Path) -> None:
    """Refuse to overwrite the input with the output."""
    same = False
    if output_path.exists():
        try:
            same = os.path.samefile(input_path, output_path)
        except OSError:
            same = False
    if same or input_path.resolve() == output_path.resolve():
        raise ApucodecError(f"{output_path}: output is the input file; choose another output path")


class Codec:
    """Sessions for the encoder and decoder, NumPy RVQ, and the lanes that connect them."""

    def __init__(self, model: ModelDir, settings: SessionSettings | None = None, warn: Warn | None = warn_stderr,
                 stages: tuple[str, ...] = ("encoder", "decoder"), queue_depth: int = 2) -> None:
        self.model = model
        self.config = model.config
        self.geometry = model.geometry
        self.settings = settings or SessionSettings()
        self.queue_depth = queue_depth
        self.rvq = NumpyRVQ(model.codebooks())
        if self.rvq.dim != self.config.latent_dim or self.rvq.n_codebooks != self.config.n_codebooks:
            raise ApucodecError(f"{model.path_of('codebooks')}: shape {self.rvq.codebooks.shape} does not match the "
                                f"manifest's codec ({self.config.n_codebooks} x {self.config.codebook_size} x "
                                f"{self.config.latent_dim})")
        self.sessions, self.placement = open_sessions(model, self.settings, warn, stages)
        self._turn = processor_turns(self.placement)
        for caveat in (model.manifest.get("export") or {}).get("caveats") or []:
            if warn is not None:  # e.g. a GroupNorm model: windowed output cannot equal whole-file output
                warn(f"{model.path}: {caveat}")

    @classmethod
    def open(cls, model_path: str | Path, settings: SessionSettings | None = None, warn: Warn | None = warn_stderr,
             stages: tuple[str, ...] = ("encoder", "decoder"), queue_depth: int = 2) -> Codec:
        return cls(load_model_dir(model_path), settings, warn, stages, queue_depth)

    # ---- helpers -------------------------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def n_codebooks(self, requested: int | None) -> int:
        n = self.rvq.n_codebooks if requested is None else int(requested)
        if not 1 <= n <= self.rvq.n_codebooks:
            raise ApucodecError(f"--codebooks must be in 1..{self.rvq.n_codebooks} for this model, got {n}")
        return n

    def _session(self, stage: str) -> StageSession:
        if stage not in self.sessions:
            raise ApucodecError(f"this Codec was opened without a {stage} session")
        return self.sessions[stage]

    def _result(self, kind: str, lanes: Lanes, samples: int, n: int, wall: float, notes: list[str]) -> RunResult:
        return RunResult(kind=kind, samples=samples, sample_rate=self.sample_rate,
                         frames=frames_for_length(samples, self.geometry.hop),
                         windows=window_count(samples, self.geometry), n_codebooks=n,
                         bitrate=self.config.bitrate(n), wall_seconds=wall, timings=sorted(lanes.timings,
                         key=lambda t: t.start), placement=self.placement, model_id=self.model.model_id,
                         queue_depth=self.queue_depth, notes=notes)

    # ---- lanes ---------------------------------------------------------------------------------------------------

    def _windows_lane(self, lanes: Lanes, blocks: Callable[[], Iterator[np.ndarray]],
                      totals: _Totals) -> Callable[[], Iterator[Any]]:
        """Source: sample blocks at the codec rate -> encoder windows (records the total length at the end)."""
        def source() -> Iterator[Any]:
            windower = SampleWindower(self.geometry)
            index = 0
            it = blocks()
            while True:
                with lanes.timed("read", index):
                    block = next(it, None)
                if block is None:
                    break
                index += 1
                yield from windower.push(block)
            totals.samples = windower.samples_received
            if totals.samples == 0:
                raise ApucodecError("the input contains no audio samples")
            yield from windower.finish()
        return source

    def _encoder_lane(self, lanes: Lanes) -> Callable[[Iterator[Any]], Iterator[Any]]:
        session = self._session("encoder")
        expected = (1, self.config.latent_dim, self.geometry.window_frames)

        def lane(windows: Iterator[Any]) -> Iterator[Any]:
            for window in windows:
                with self._turn["encoder"], lanes.timed("encoder", window.index):
                    out = session.run(window.samples.reshape(1, 1, -1))
                    if out.shape != expected:
                        raise ApucodecError(f"{self.model.path / session.placement.graph}: output shape "
                                            f"{list(out.shape)}, the manifest says {list(expected)}")
                    rows = kept_frames(out, window, self.geometry)
                yield window.index, rows
        return lane

    def _quantize_lane(self, lanes: Lanes, n: int, dequantize: bool) -> Callable[[Iterator[Any]], Iterator[Any]]:
        def lane(items: Iterator[Any]) -> Iterator[Any]:
            for index, rows in items:
                with lanes.timed("rvq", index):
                    codes = self.rvq.quantize(rows, n)
                    out = self.rvq.dequantize(codes) if dequantize else codes
                yield index, out
        return lane

    def _dequantize_lane(self, lanes: Lanes) -> Callable[[Iterator[Any]], Iterator[Any]]:
        def lane(items: Iterator[Any]) -> Iterator[Any]:
            for index, codes in items:
                with lanes.timed("rvq", index):
                    rows = self.rvq.dequantize(codes)
                yield index, rows
        return lane

    def _decoder_lane(self, lanes: Lanes, totals: _Totals) -> Callable[[Iterator[Any]], Iterator[Any]]:
        session = self._session("decoder")
        expected = (1, 1, self.geometry.window_samples)

        def run(window: Any) -> tuple[int, np.ndarray]:
            with self._turn["decoder"], lanes.timed("decoder", window.index):
                out = session.run(window.latent[None])
                if out.shape != expected:
                    raise ApucodecError(f"{self.model.path / session.placement.graph}: output shape "
                                        f"{list(out.shape)}, the manifest says {list(expected)}")
                return window.index, kept_samples(out, window, self.geometry)

        def lane(items: Iterator[Any]) -> Iterator[Any]:
            windower = FrameWindower(self.geometry, self.config.latent_dim)
            for _, rows in items:
                for window in windower.push(rows):
                    yield run(window)
            for window in windower.finish(totals.samples):
                yield run(window)
        return lane

    def _audio_sink(self, lanes: Lanes, write: Callable[[np.ndarray], None],
                    progress: Progress | None) -> Callable[[Any], None]:
        def consume(item: tuple[int, np.ndarray]) -> None:
            index, samples = item
            with lanes.timed("write", index):
                write(samples)
            if progress is not None:
                progress(samples.size)
        return consume

    # ---- in memory -----------------------------------------------------------------------------------------------

    def _array_blocks(self, audio: np.ndarray, block: int = 1 << 16) -> Callable[[], Iterator[np.ndarray]]:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        check_finite(audio, Path("<array>"))

        def blocks() -> Iterator[np.ndarray]:
            for start in range(0, audio.size, block):
                yield audio[start: start + block]
        return blocks

    def run_array(self, audio: np.ndarray, n_codebooks: int | None = None, progress: Progress | None = None,
                  overlap: bool = True) -> tuple[np.ndarray, RunResult]:
        """Codec-rate mono samples in, reconstruction of exactly the same length out.

        `overlap=False` runs the same stages one window at a time in this thread (bench's sequential baseline).
        """
        n = self.n_codebooks(n_codebooks)
        pieces: list[np.ndarray] = []
        lanes, totals = Lanes(self.queue_depth, overlap=overlap), _Totals()
        start = time.perf_counter()
        lanes.run(self._windows_lane(lanes, self._array_blocks(audio), totals),
                  [("encoder", self._encoder_lane(lanes)), ("rvq", self._quantize_lane(lanes, n, True)),
                   ("decoder", self._decoder_lane(lanes, totals))],
                  self._audio_sink(lanes, pieces.append, progress))
        wall = time.perf_counter() - start
        return np.concatenate(pieces), self._result("run", lanes, totals.samples, n, wall, [])

    def encode_array(self, audio: np.ndarray, n_codebooks: int | None = None) -> tuple[np.ndarray, RunResult]:
        """Codec-rate mono samples in, codes [n_codebooks, frames] out."""
        n = self.n_codebooks(n_codebooks)
        pieces: list[np.ndarray] = []
        lanes, totals = Lanes(self.queue_depth), _Totals()
        start = time.perf_counter()
        lanes.run(self._windows_lane(lanes, self._array_blocks(audio), totals),
                  [("encoder", self._encoder_lane(lanes)), ("rvq", self._quantize_lane(lanes, n, False))],
                  lambda item: pieces.append(item[1]))
        wall = time.perf_counter() - start
        return np.concatenate(pieces, axis=1), self._result("encode", lanes, totals.samples, n, wall, [])

    def decode_codes(self, codes: np.ndarray, length: int) -> tuple[np.ndarray, RunResult]:
        """Codes [n, frames] and the original length in, `length` samples out."""
        pieces: list[np.ndarray] = []
        lanes, totals = Lanes(self.queue_depth), _Totals(samples=length)
        start = time.perf_counter()
        lanes.run(self._codes_source(codes, length), [("rvq", self._dequantize_lane(lanes)),
                                                       ("decoder", self._decoder_lane(lanes, totals))],
                  self._audio_sink(lanes, pieces.append, None), source_name="codes")
        wall = time.perf_counter() - start
        return np.concatenate(pieces), self._result("decode", lanes, length, codes.shape[0], wall, [])

    def _reader_source(self, reader: ApcReader) -> Callable[[], Iterator[Any]]:
        """h16: codes chunk by chunk from an .apc reader (memory of one chunk, CRC checked after the last)."""
        self.n_codebooks(reader.header.n_codebooks)

        def source() -> Iterator[Any]:
            yield from enumerate(reader.chunks(self.geometry.chunk_frames))
        return source

    def _codes_source(self, codes: np.ndarray, length: int) -> Callable[[], Iterator[Any]]:
        if codes.ndim != 2 or codes.shape[1] != frames_for_length(length, self.geometry.hop):
            raise ApucodecError(f"codes of shape {codes.shape} do not cover {length} samples")
        self.n_codebooks(codes.shape[0])
        chunk = self.geometry.chunk_frames

        def source() -> Iterator[Any]:
            for index, start in enumerate(range(0, codes.shape[1], chunk)):
                yield index, codes[:, start: start + chunk]
        return source

    # ---- files ---------------------------------------------------------------------------------------------------

    def _input(self, input_path: str | Path, notes: list[str]) -> AudioInfo:
        info = open_input(input_path)
        notes.extend(input_notes(info, self.sample_rate))
        return info

    def run_file(self, input_path: str | Path, output_path: str | Path, n_codebooks: int | None = None,
                 match_input: bool = False, progress: Progress | None = None) -> RunResult:
        """Encode and decode a file, streaming; 44.1 kHz mono output unless `match_input` keeps the input's rate."""
        n = self.n_codebooks(n_codebooks)
        notes: list[str] = []
        info = self._input(input_path, notes)
        output_path = Path(output_path)
        check_distinct(info.path, output_path)
        out_rate = info.sample_rate if match_input else self.sample_rate
        lanes, totals = Lanes(self.queue_depth), _Totals()
        start = time.perf_counter()
        with open_audio_output(output_path, out_rate, info.frames if match_input else None) as fh:
            writer = AudioWriter(fh, self.sample_rate, info.frames if match_input else None)
            lanes.run(self._windows_lane(lanes, lambda: read_blocks(info, self.sample_rate), totals),
                      [("encoder", self._encoder_lane(lanes)), ("rvq", self._quantize_lane(lanes, n, True)),
                       ("decoder", self._decoder_lane(lanes, totals))],
                      self._audio_sink(lanes, writer.write, progress))
            writer.finish()
        wall = time.perf_counter() - start
        return self._result("run", lanes, totals.samples, n, wall, notes)

    def encode_file(self, input_path: str | Path, output_path: str | Path, n_codebooks: int | None = None,
                    progress: Progress | None = None) -> RunResult:
        """Audio file -> .apc file, streaming (the codes are written as they are produced)."""
        n = self.n_codebooks(n_codebooks)
        notes: list[str] = []
        info = self._input(input_path, notes)
        output_path = Path(output_path)
        check_distinct(info.path, output_path)
        lanes, totals = Lanes(self.queue_depth), _Totals()
        hop = self.geometry.hop
        start = time.perf_counter()
        with open_binary_output(output_path) as fh:
            apc = ApcWriter(fh, sample_rate=self.sample_rate, input_rate=info.sample_rate, n_codebooks=n,
                            codebook_size=self.rvq.codebook_size, hop=hop, model_id=self.model.model_id)

            def consume(item: tuple[int, np.ndarray]) -> None:
                index, codes = item
                with lanes.timed("write", index):
                    apc.write(codes)
                if progress is not None:
                    progress(codes.shape[1] * hop)

            lanes.run(self._windows_lane(lanes, lambda: read_blocks(info, self.sample_rate), totals),
                      [("encoder", self._encoder_lane(lanes)), ("rvq", self._quantize_lane(lanes, n, False))],
                      consume)
            apc.close(totals.samples, info.frames)
        wall = time.perf_counter() - start
        return self._result("encode", lanes, totals.samples, n, wall, notes)

    def check_header(self, header: ApcHeader, source: Path, force: bool = False) -> None:
        """Refuse an .apc this model cannot decode; one made by another model unless `force`."""
        cfg = self.config
        if header.sample_rate != cfg.sample_rate or header.hop != self.geometry.hop:
            raise ApucodecError(f"{source}: made for {header.sample_rate} Hz / hop {header.hop}, this model is "
                                f"{cfg.sample_rate} Hz / hop {self.geometry.hop}")
        if header.codebook_size != self.rvq.codebook_size or header.n_codebooks > self.rvq.n_codebooks:
            raise ApucodecError(f"{source}: uses {header.n_codebooks} codebooks of {header.codebook_size}, this model "
                                f"has {self.rvq.n_codebooks} of {self.rvq.codebook_size}")
        if header.model_id != self.model.model_id and not force:
            raise ApucodecError(f"{source}: made by model {header.model_id}, not by {self.model.model_id} "
                                f"({self.model.path}); pass --force to decode it anyway")

    def decode_file(self, input_path: str | Path, output_path: str | Path, force: bool = False,
                    match_input: bool = False, progress: Progress | None = None) -> RunResult:
        """.apc file -> audio file (44.1 kHz mono, or the original input's rate with `match_input`)."""
        input_path, output_path = Path(input_path), Path(output_path)
        with open_apc(input_path) as reader:  # h16: streamed; the header is checked before anything is allocated
            return self._decode_reader(reader, input_path, output_path, force, match_input, progress)

    def _decode_reader(self, reader: ApcReader, input_path: Path, output_path: Path, force: bool, match_input: bool,
                       progress: Progress | None) -> RunResult:
        header = reader.header
        check_distinct(input_path, output_path)
        self.check_header(header, input_path, force)
        notes = [f"{input_path}: made by model {header.model_id}, decoded with {self.model.model_id} (--force)"] \
            if header.model_id != self.model.model_id else []
        out_rate = header.input_rate if match_input else self.sample_rate
        target = header.input_length if match_input else None
        lanes, totals = Lanes(self.queue_depth), _Totals(samples=header.original_length)
        start = time.perf_counter()
        with open_audio_output(output_path, out_rate, target or header.original_length) as fh:
            writer = AudioWriter(fh, self.sample_rate, target)
            lanes.run(self._reader_source(reader),
                      [("rvq", self._dequantize_lane(lanes)), ("decoder", self._decoder_lane(lanes, totals))],
                      self._audio_sink(lanes, writer.write, progress), source_name="codes")
            writer.finish()
        wall = time.perf_counter() - start
        return self._result("decode", lanes, header.original_length, header.n_codebooks, wall, notes)
