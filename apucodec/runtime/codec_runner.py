"""The codec at inference: reader -> encoder -> RVQ -> decoder -> writer, overlapped, streaming, timed.

`CodecEngine` opens the sessions once (placement decided and reported at open) and then runs any number of inputs:

    codec = CodecEngine.open("apucodec-model")           # or CodecEngine(load_model_dir(...), SessionSettings(...))
    result = codec.run_file("in.flac", "out.wav")        # RunResult: timings per stage, item and step; placement
    codec.encode_file("in.wav", "in.apc"); codec.decode_file("in.apc", "out.wav")
    audio, result = codec.run_array(samples)             # in memory, same lanes (tests, bench)

Each graph stage runs a step graph with state (apucodec/runtime/stepper.py), so the output equals whole-file
inference at every sample and no context is recomputed. `run` is exactly `encode` then `decode`: the same steps,
the same codes — only the .apc file in between is skipped — so an encode/decode round trip reproduces `run` bit for
bit. The chains themselves are built in apucodec/runtime/engine.py.

Every file output goes through a temp file renamed at the end, so a failure or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.contract.config import codebooks_to_use
from apucodec.contract.steps import WHOLE_SEQUENCE, frames_for_length
from apucodec.errors import ApucodecError
from apucodec.io.apc_header import ApcHeader
from apucodec.io.apc_reader import ApcReader, open_apc
from apucodec.io.apc_writer import ApcWriter
from apucodec.io.audio_read import AudioInfo, check_finite, probe, read_blocks
from apucodec.io.audio_write import AudioWriter, open_audio_output
from apucodec.io.outputs import open_binary_output  # unnamed temp outputs, `-`, devices
from apucodec.model.directory import ModelDir, load_model_dir
from apucodec.runtime import engine, segmented_stages
from apucodec.runtime.eps import Warn, warn_stderr
from apucodec.runtime.lanes import Lanes
from apucodec.runtime.placement import processor_turns
from apucodec.runtime.run_result import RunResult, check_distinct, input_notes  # noqa: F401 (re-exported)
from apucodec.runtime.rvq_projected import load_rvq
from apucodec.runtime.sessions import StageSession, open_sessions
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.runtime.stage_steps import StageSteps
from apucodec.runtime.stepper import StepObserver, Stepper

Progress = Callable[[int], None]  # called with the number of codec-rate samples just finished


class CodecEngine:
    """Sessions for the encoder and decoder step graphs, NumPy RVQ, and the chains that connect them.

    `step_frames` picks the step graphs (default: the largest the model has, its offline step; the live step
    trades throughput for latency).
    """

    def __init__(self, model: ModelDir, settings: SessionSettings | None = None, warn: Warn | None = warn_stderr,
                 stages: tuple[str, ...] = ("encoder", "decoder"), queue_depth: int = 2,
                 step_frames: int | None = None) -> None:
        self.model = model
        self.config = model.config
        self.hop = model.hop
        self.settings = settings or SessionSettings()
        self.queue_depth = queue_depth
        self.rvq = load_rvq(model)  # plain, or DAC's projected RVQ (runtime/rvq_projected.py)
        if self.rvq.dim != self.config.latent_dim or self.rvq.n_codebooks != self.config.n_codebooks:
            raise ApucodecError(f"{model.path_of('codebooks')}: shape {self.rvq.codebooks.shape} does not match the "
                                f"manifest's codec ({self.config.n_codebooks} x {self.config.codebook_size} x "
                                f"{self.config.latent_dim})")
        self.sessions, self.placement = open_sessions(model, self.settings, warn, stages, step_frames)
        self._turn = processor_turns(self.placement)
        self._steps = StageSteps(model, self.sessions, self.settings)
        for caveat in (model.manifest.export.caveats if model.manifest.export else None) or []:
            if warn is not None:  # e.g. a GroupNorm model exported before whole-sequence graphs existed
                warn(f"{model.path}: {caveat}")
        approximate = None if self.whole_sequence else segmented_stages.approximation_line(
            model, self.step_frames(next(iter(self.sessions))))
        if approximate and warn is not None:  # a GroupNorm model through its step graphs
            warn(approximate)

    @classmethod
    def open(cls, model_path: str | Path | None = None, settings: SessionSettings | None = None,
             warn: Warn | None = warn_stderr, stages: tuple[str, ...] = ("encoder", "decoder"), queue_depth: int = 2,
             step_frames: int | None = None) -> CodecEngine:
        """Open a model directory (default: --model's resolution: $APUCODEC_MODEL, ./apucodec-model, bundled)."""
        from apucodec.model.location import locate_model

        return cls(load_model_dir(locate_model(model_path).path), settings, warn, stages, queue_depth, step_frames)

    # ---- helpers -------------------------------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def n_codebooks(self, requested: int | None) -> int:
        return codebooks_to_use(requested, self.rvq.n_codebooks)

    def _session(self, stage: str) -> StageSession:
        if stage not in self.sessions:
            raise ApucodecError(f"this engine was opened without a {stage} session")
        return self.sessions[stage]

    def step_frames(self, stage: str) -> int:
        """Frames per step of the stage's graph (WHOLE_SEQUENCE, 0: a pooled-norm model's whole-sequence graph)."""
        return self._session(stage).record.step_frames or WHOLE_SEQUENCE

    @property
    def whole_sequence(self) -> bool:
        """Does this engine run whole-sequence graphs (a pooled-norm model offline: exact, memory grows)?"""
        return all(self.step_frames(stage) == WHOLE_SEQUENCE for stage in self.sessions)

    def stepper(self, stage: str, *, lead_frames: int = 0, on_step: StepObserver | None = None) -> Stepper:
        """A fresh stream through `stage`'s step graph (zero state: the start of a stream); `on_step` is told the
        start and end of every step-graph call. Quiet steps of an INT8 graph run in FP32 (runtime/int8_floor.py)."""
        self._session(stage)
        return self._steps.stepper(stage, lead_frames=lead_frames, on_step=on_step)

    def _chain(self, lanes: Lanes, kind: str, n: int, steppers: dict[str, Stepper],
               notes: list[str]) -> list[tuple[str, engine.StageFunction]]:
        """The stages of `kind`; the Steppers it creates are left in `steppers` (their step counts), and notes about
        the run (a whole-sequence input cut into segments) in `notes`."""
        if self.whole_sequence:
            return segmented_stages.segmented_chain(self, lanes, kind, n, notes)
        stages: list[tuple[str, engine.StageFunction]] = []
        if kind in ("run", "encode"):
            steppers["encoder"] = self.stepper("encoder", on_step=lanes.step_recorder("encoder"))
            stages.append(("encoder", engine.encoder_stage(steppers["encoder"], self.hop, lanes,
                                                           self._turn["encoder"])))
            stages.append(("rvq", engine.rvq_stage(self.rvq, lanes, "roundtrip" if kind == "run" else "quantize", n)))
        else:
            stages.append(("rvq", engine.rvq_stage(self.rvq, lanes, "dequantize")))
        if kind in ("run", "decode"):
            steppers["decoder"] = self.stepper("decoder", on_step=lanes.step_recorder("decoder"))
            stages.append(("decoder", engine.decoder_stage(steppers["decoder"], self.hop, lanes,
                                                           self._turn["decoder"])))
        return stages

    def _result(self, kind: str, lanes: Lanes, samples: int, n: int, wall: float, notes: list[str],
                steps: int) -> RunResult:
        return RunResult(kind=kind, samples=samples, sample_rate=self.sample_rate,
                         frames=frames_for_length(samples, self.hop), steps=steps, n_codebooks=n,
                         bitrate=self.config.bitrate(n), wall_seconds=wall,
                         timings=sorted(lanes.timings, key=lambda t: t.start), placement=self.placement,
                         model_id=self.model.model_id, queue_depth=self.queue_depth, notes=notes,
                         step_timings=sorted(lanes.step_timings, key=lambda t: t.start))

    def _execute(self, kind: str, lanes: Lanes, source: Any, n: int, sink: Callable[[np.ndarray, int], None],
                 notes: list[str], source_name: str = "reader") -> RunResult:
        start = time.perf_counter()
        steppers: dict[str, Stepper] = {}
        run_notes: list[str] = []
        total = engine.run_chain(lanes, source, self._chain(lanes, kind, n, steppers, run_notes), sink, source_name)
        if total == 0:
            raise ApucodecError("the input contains no audio samples")
        steps = max(s.steps for s in steppers.values()) if steppers else 0
        notes = notes + self._steps.notes(list(steppers.values())) + run_notes
        return self._result(kind, lanes, total, n, time.perf_counter() - start, notes, steps)

    @staticmethod
    def _progress_sink(write: Callable[[np.ndarray], None], lanes: Lanes,
                       progress: Progress | None, samples_of: Callable[[np.ndarray], int]) -> Any:
        def sink(data: np.ndarray, index: int) -> None:
            with lanes.timed("write", index):
                write(data)
            if progress is not None:
                progress(samples_of(data))
        return sink

    # ---- in memory -----------------------------------------------------------------------------------------------

    @staticmethod
    def _array_blocks(audio: np.ndarray, block: int = 1 << 16) -> Iterator[np.ndarray]:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        check_finite(audio, Path("<array>"))
        for start in range(0, audio.size, block):
            yield audio[start: start + block]

    def run_array(self, audio: np.ndarray, n_codebooks: int | None = None, progress: Progress | None = None,
                  overlap: bool = True) -> tuple[np.ndarray, RunResult]:
        """Codec-rate mono samples in, reconstruction of exactly the same length out.

        `overlap=False` runs the same stages one step at a time in this thread (bench's sequential baseline).
        """
        n = self.n_codebooks(n_codebooks)
        pieces: list[np.ndarray] = []
        lanes = Lanes(self.queue_depth, overlap=overlap)
        result = self._execute("run", lanes, engine.sample_source(self._array_blocks(audio), lanes), n,
                               self._progress_sink(pieces.append, lanes, progress, len), [])
        return np.concatenate(pieces), result

    def encode_array(self, audio: np.ndarray, n_codebooks: int | None = None) -> tuple[np.ndarray, RunResult]:
        """Codec-rate mono samples in, codes [n_codebooks, frames] out."""
        n = self.n_codebooks(n_codebooks)
        pieces: list[np.ndarray] = []
        lanes = Lanes(self.queue_depth)
        result = self._execute("encode", lanes, engine.sample_source(self._array_blocks(audio), lanes), n,
                               lambda data, index: pieces.append(data), [])
        return np.concatenate(pieces, axis=1), result

    def decode_codes(self, codes: np.ndarray, length: int) -> tuple[np.ndarray, RunResult]:
        """Codes [n, frames] and the original length in, `length` samples out."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or length < 1 or codes.shape[1] != frames_for_length(length, self.hop):
            raise ApucodecError(f"codes of shape {codes.shape} do not cover {length} samples")
        n = self.n_codebooks(codes.shape[0])
        chunk = 64
        chunks = (codes[:, i: i + chunk] for i in range(0, codes.shape[1], chunk))
        pieces: list[np.ndarray] = []
        lanes = Lanes(self.queue_depth)
        result = self._execute("decode", lanes, engine.codes_source(chunks, length), n,
                               lambda data, index: pieces.append(data), [], source_name="codes")
        return np.concatenate(pieces), result

    # ---- files ---------------------------------------------------------------------------------------------------

    def _input(self, input_path: str | Path, notes: list[str]) -> AudioInfo:
        info = probe(input_path)
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
        lanes = Lanes(self.queue_depth)
        with open_audio_output(output_path, out_rate, info.frames if match_input else None) as fh:
            writer = AudioWriter(fh, self.sample_rate, info.frames if match_input else None)
            result = self._execute("run", lanes, engine.sample_source(read_blocks(info, self.sample_rate), lanes), n,
                                   self._progress_sink(writer.write, lanes, progress, len), notes)
            writer.finish()
        return result

    def encode_file(self, input_path: str | Path, output_path: str | Path, n_codebooks: int | None = None,
                    progress: Progress | None = None) -> RunResult:
        """Audio file -> .apc file, streaming (the codes are written as they are produced)."""
        n = self.n_codebooks(n_codebooks)
        notes: list[str] = []
        info = self._input(input_path, notes)
        output_path = Path(output_path)
        check_distinct(info.path, output_path)
        lanes = Lanes(self.queue_depth)
        with open_binary_output(output_path) as fh:
            apc = ApcWriter(fh, sample_rate=self.sample_rate, input_rate=info.sample_rate, n_codebooks=n,
                            codebook_size=self.rvq.codebook_size, hop=self.hop, model_id=self.model.model_id)
            result = self._execute("encode", lanes, engine.sample_source(read_blocks(info, self.sample_rate), lanes),
                                   n, self._progress_sink(apc.write, lanes, progress,
                                                          lambda codes: codes.shape[1] * self.hop), notes)
            apc.close(result.samples, info.frames)
        return result

    def check_header(self, header: ApcHeader, source: Path, force: bool = False) -> None:
        """Refuse an .apc this model cannot decode; one made by another model unless `force`."""
        cfg = self.config
        if header.sample_rate != cfg.sample_rate or header.hop != self.hop:
            raise ApucodecError(f"{source}: made for {header.sample_rate} Hz / hop {header.hop}, this model is "
                                f"{cfg.sample_rate} Hz / hop {self.hop}")
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
        with open_apc(input_path) as reader:  # streamed; the header is checked before anything is allocated
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
        lanes = Lanes(self.queue_depth)
        self.n_codebooks(header.n_codebooks)
        with open_audio_output(output_path, out_rate, target or header.original_length) as fh:
            writer = AudioWriter(fh, self.sample_rate, target)
            # Streamed chunk by chunk (memory of one chunk); the CRC is checked after the last, before the output
            # is linked into place.
            result = self._execute("decode", lanes, engine.codes_source(reader.chunks(256), header.original_length),
                                   header.n_codebooks, self._progress_sink(writer.write, lanes, progress, len), notes,
                                   source_name="codes")
            writer.finish()
        return result
