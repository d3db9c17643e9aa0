"""The manifest's records of how files were made: tensors and graph facts of a step graph, export and quantization
reports, INT8 fidelity. Read by attribute through apucodec/contract/manifest.py, which re-exports them; the JSON
they map is format version 2 exactly (records.py says how unknown keys survive). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apucodec.contract.records import Record


@dataclass
class TensorEntry(Record):
    """A step graph input or output: name, static shape, dtype."""

    name: str
    shape: list[int]
    dtype: str = "float32"


@dataclass
class GraphFacts(Record):
    """Node and op counts of a graph file, and its cost per step (bench reads gflop)."""

    nodes_exported: int | None = None   # before simplification (export only)
    nodes: int | None = None
    ops: dict[str, int] | None = None
    opset: int | None = None
    gflop: float | None = None


@dataclass
class Fidelity(Record):
    """How far an INT8 path drifts from FP32 on held-out clips (calibration/fidelity.py writes it)."""

    evaluation_clips: int | None = None
    evaluation_seconds: float | None = None
    evaluation_steps: int | None = None
    method: str | None = None
    latent_snr_db: float | None = None
    latent_snr_db_worst_clip: float | None = None
    latent_snr_db_edges: float | None = None
    edge_frames: int | None = None
    code_agreement: list[float] | None = None
    e2e_snr_db: dict[str, float] | None = None           # fp32, int8, delta
    int8_vs_fp32_output_snr_db: float | None = None
    e2e_si_sdr_db: dict[str, float] | None = None
    int8_path: str | None = None
    session: dict[str, str] | None = None


@dataclass
class Quantization(Record):
    """files[role].quantization of an NPU INT8 graph (calibration/quantize.py writes it)."""

    PARSERS = {"fidelity": Fidelity.parse}

    source: str | None = None
    preset: str | None = None
    description: str | None = None
    activation_bits: int | None = None
    weight_bits: int | None = None
    power_of_two_scales: bool | None = None
    format: str | None = None
    opset: int | None = None
    conv2d: bool | None = None
    float_nodes: dict[str, Any] | None = None
    quark_version: str | None = None
    quark_version_tested: str | None = None
    calibration: dict[str, Any] | None = None
    fidelity: Fidelity | None = None
    npu_ops: dict[str, Any] | None = None
    custom_ops: dict[str, Any] | None = None   # a JSON null (no custom ops) stays in `extra`
    seconds: dict[str, float] | None = None


@dataclass
class ExportRecord(Record):
    """The manifest's `export` section: where the graphs came from and how closely they match PyTorch."""

    source: dict[str, Any] | None = None
    exporter: str | None = None
    opset: int | None = None
    weight_norm_folded: int | None = None
    simplifier: str | None = None
    parity: dict[str, dict[str, Any]] | None = None   # role -> snr_db, max_abs_error, ...
    caveats: list[str] | None = None
    seconds: dict[str, float] | None = None
    # A pooled-norm model's step graphs: how close their running statistics come to whole-file (never "parity")
    approximate: dict[str, Any] | None = None


@dataclass
class CpuInt8Record(Record):
    """The manifest's `cpu_int8` section, written by `apucodec quantize --target cpu`."""

    PARSERS = {"fidelity": Fidelity.parse}

    target: str | None = None
    quantizer: str | None = None
    step_frames: int | None = None
    graphs: dict[str, dict[str, Any]] | None = None
    calibration: dict[str, Any] | None = None
    fidelity: Fidelity | None = None
    seconds: dict[str, float] | None = None
