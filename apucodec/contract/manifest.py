"""The model directory's manifest.json, typed: one reader (`read_manifest`), one writer (`write_manifest`).

    Manifest            format, model_id, codec (-> .config: the family's config), streaming, files, export, producers,
                        cpu_int8 (the CPU INT8 pass's report), providers / workers (optional, written by hand)
    FileEntry           files[role]: name, sha256, bytes; a step graph's stage, step_frames, precision, state_size,
                        horizon_frames, inputs/outputs (TensorEntry), graph (GraphFacts); a quantized graph's
                        source, preset, format, quantization (Quantization), custom_op_domains; codebooks' shape/dtype;
                        a graph's external_data (the weights files it reads; a weights file's format is WEIGHTS_FORMAT)
    Streaming           hop, step_frames, per stage StageStreaming (delay, state size), algorithmic_latency
    (the records below live in manifest_records.py and are re-exported here)
    ExportRecord        how the export made the graphs: exporter, opset, simplifier, parity, caveats, seconds
    Quantization        an NPU INT8 graph's preset, bit widths, calibration, fidelity (Fidelity), NPU op counts
    CpuInt8Record       the CPU INT8 pass: quantizer, graphs, calibration, fidelity (Fidelity)

Export writes the manifest, quantization passes add file entries and sections; the runtime only reads. The JSON
is format version 2 exactly as written before these classes existed (records.py says how unknown keys survive).
Torch-free: the runtime imports it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apucodec.contract.families import FamilyConfig, config_from_codec
from apucodec.contract.manifest_checks import check_manifest
from apucodec.contract.manifest_records import (
    CpuInt8Record,
    ExportRecord,
    Fidelity,
    GraphFacts,
    Quantization,
    TensorEntry,
)
from apucodec.contract.records import Record, parse_list
from apucodec.contract.steps import STAGES, algorithmic_latency
from apucodec.errors import ApucodecError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MANIFEST_NAME", "WEIGHTS_FORMAT", "CpuInt8Record", "ExportRecord",
           "Fidelity", "FileEntry", "GraphFacts", "Manifest", "Quantization", "StageStreaming", "Streaming",
           "TensorEntry", "file_record", "read_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "apucodec-model"
# files[role].format of a weights file that step graphs read as ONNX external data (apucodec/export/shared_weights.py)
WEIGHTS_FORMAT = "onnx-external-data"
# 2: stateful step graphs (encoder.sN / decoder.sN) and a `streaming` section replace version 1's static windows.
FORMAT_VERSION = 2


@dataclass
class FileEntry(Record):
    """files[role]: one file of the model directory, covered by its sha256."""

    PARSERS = {"inputs": parse_list(TensorEntry.parse), "outputs": parse_list(TensorEntry.parse),
               "graph": GraphFacts.parse, "quantization": Quantization.parse}

    name: str
    role: str
    sha256: str
    bytes: int | None = None
    stage: str | None = None               # "encoder" | "decoder": set on step graphs only
    whole_sequence: str | None = None      # "encoder" | "decoder": a whole-sequence graph (pooled-norm models)
    step_frames: int | None = None
    precision: str | None = None           # "fp32" | "cpu-int8" | "npu-int8"
    state_size: int | None = None
    horizon_frames: int | None = None
    inputs: list[TensorEntry] | None = None
    outputs: list[TensorEntry] | None = None
    shape: list[int] | None = None         # codebooks
    dtype: str | None = None
    source: str | None = None              # a quantized graph's FP32 role
    target: str | None = None
    preset: str | None = None
    format: str | None = None
    graph: GraphFacts | None = None
    custom_op_domains: list[str] | None = None
    quantization: Quantization | None = None
    external_data: list[str] | None = None  # a graph's weights files (names of entries in WEIGHTS_FORMAT)

    @classmethod
    def from_dict(cls, data: Any, **context: Any) -> FileEntry:
        if isinstance(data, FileEntry):
            return data
        data = dict(data)
        if "stage" in data:  # a step graph: the numbers the runtime computes with must be there
            data.update(stage=str(data["stage"]), step_frames=int(data["step_frames"]),
                        state_size=int(data["state_size"]), horizon_frames=int(data["horizon_frames"]))
        return super().from_dict(data, **context)

    @property
    def is_step_graph(self) -> bool:
        return self.stage is not None

    @property
    def graph_precision(self) -> str:
        """The precision of a step graph; entries written without one are FP32."""
        return self.precision or "fp32"

    def step_facts(self) -> dict[str, Any]:
        """What a graph derived from this step graph shares with it: I/O, state layout and timing."""
        return {"stage": self.stage, "step_frames": self.step_frames, "state_size": self.state_size,
                "horizon_frames": self.horizon_frames, "inputs": self.inputs, "outputs": self.outputs}


def file_record(role: str, entry: Any) -> FileEntry:
    """files[role] as a FileEntry (a plain dict, as older code assigns, is parsed; its role defaults to the key)."""
    return FileEntry.from_dict(entry if isinstance(entry, FileEntry) or "role" in entry else {**entry, "role": role})


@dataclass
class StageStreaming(Record):
    """A stage's timing: its output delay at the codec rate, and its state size (same for all its graphs)."""

    NOT_JSON = ("stage",)

    delay_samples: int
    state_size: int
    delay_frames: float | None = None
    delay_ms: float | None = None
    stage: str = ""

    @classmethod
    def from_dict(cls, data: Any, **context: Any) -> StageStreaming:
        if isinstance(data, StageStreaming):
            return data
        data = dict(data)
        data.update(delay_samples=int(data["delay_samples"]), state_size=int(data["state_size"]))
        return super().from_dict(data, **context)


@dataclass
class Streaming(Record):
    """The manifest's `streaming` section: per stage delay and state size, and the latency per step size."""

    ORDER = ("hop", "step_frames", *STAGES, "algorithmic_latency")

    hop: int
    encoder: StageStreaming
    decoder: StageStreaming
    step_frames: list[int] | None = None
    algorithmic_latency: dict[str, dict[str, float]] | None = None  # str(step frames) -> samples, ms

    @classmethod
    def from_dict(cls, data: Any, **context: Any) -> Streaming:
        if isinstance(data, Streaming):
            return data
        data = dict(data)
        data.update({stage: StageStreaming.from_dict(data[stage], stage=stage) for stage in STAGES})
        return super().from_dict(data, **context)

    @classmethod
    def compute(cls, hop: int, sample_rate: int, stages: dict[str, tuple[int, int]],
                step_frames: list[int]) -> Streaming:
        """From each stage's (delay_samples, state_size): delays in frames and ms, latency per step size."""
        facts = {stage: StageStreaming(delay, state, round(delay / hop, 3), round(1000 * delay / sample_rate, 2),
                                       stage=stage) for stage, (delay, state) in stages.items()}
        latency = {}
        for s in step_frames:
            samples = algorithmic_latency(facts["encoder"].delay_samples, facts["decoder"].delay_samples, s, hop)
            latency[str(s)] = {"samples": samples, "ms": round(1000 * samples / sample_rate, 2)}
        return cls(hop=hop, step_frames=sorted(step_frames), algorithmic_latency=latency, **facts)

    def stage(self, stage: str) -> StageStreaming:
        return self.encoder if stage == "encoder" else self.decoder


@dataclass
class Manifest(Record):
    """manifest.json of a model directory. `files` maps a role (encoder.s4, codebooks, ...) to its FileEntry."""

    ORDER = ("format", "format_version", "model_id", "codec", "streaming", "files", "export", "producers")

    PARSERS = {"streaming": Streaming.parse, "export": ExportRecord.parse, "cpu_int8": CpuInt8Record.parse,
               "files": lambda files: {str(role): file_record(str(role), e) for role, e in dict(files).items()}}

    model_id: str
    codec: dict[str, Any]
    streaming: Streaming
    files: dict[str, FileEntry]
    export: ExportRecord | None = None
    producers: dict[str, str] | None = None
    cpu_int8: CpuInt8Record | None = None
    providers: dict[str, dict[str, Any]] | None = None   # per-EP session options, relative cache_dir allowed
    workers: dict[str, str] | None = None                # stage -> Python interpreter of its worker process
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    config: FamilyConfig = field(init=False, repr=False)

    NOT_JSON = ("config",)

    def __post_init__(self) -> None:
        # A bad config, or a family this apucodec does not know, fails when the manifest is read.
        self.config = config_from_codec(self.codec)
        if self.streaming.hop != self.config.hop_length:
            raise ValueError(f"streaming.hop {self.streaming.hop} is not the codec's hop {self.config.hop_length}")

    @property
    def step_graphs(self) -> list[FileEntry]:
        """Every step graph entry, by stage, step size and precision."""
        found = [e for e in self.files.values() if e.is_step_graph]
        return sorted(found, key=lambda g: (g.stage, g.step_frames, g.graph_precision))


def read_manifest(path: str | Path) -> Manifest:
    """manifest.json -> Manifest, refusing (one line naming the file) anything that is not a version-2 manifest
    with sane names and values."""
    from apucodec.contract.json_limits import read_json_bounded

    path = Path(path)
    data = read_json_bounded(path, "manifest")  # size, depth and file type bounded before anything walks it
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ApucodecError(f"{path}: not an apucodec manifest (format is not {FORMAT_NAME!r})")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ApucodecError(f"{path}: format version {version!r} is not supported (this apucodec reads "
                            f"version {FORMAT_VERSION}); re-export the model with this apucodec")
    check_manifest(data, path)  # h16: plain file names, sane values
    try:
        return Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ApucodecError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None


def write_manifest(path: Path, manifest: Manifest) -> None:
    """The one writer: the manifest's JSON, atomically (a reader never sees half a manifest)."""
    _write_json_atomic(path, manifest.to_dict())


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a manifest is as readable as the model files beside it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
