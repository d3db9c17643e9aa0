"""Where each stage ran: the per-stage record and the report `run --report`, `bench` and `doctor` print; which
stages share a processor and so take turns.

Per stage: the EP asked for, the EP that ran, how many graph nodes each EP got (ONNX Runtime's own assignment
record, or its profiler on versions without one), why a fallback happened, which onnxruntime in which process ran
it (a stage worker may run another onnxruntime under another Python), and for the Vitis AI EP how many operators
the NPU really took: ONNX Runtime says "VitisAI" for every node the EP claims, including the ones the EP itself
runs on the CPU (VITIS_EP_CPU), so only the EP's own report can prove the NPU did the work.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from apucodec.model.directory import ModelDir
from apucodec.runtime.eps import short_ep

RVQ_LANE = "NumPy (CPU)"
NODE_SOURCE_NOTES = {"profiled": " (kernels run, after fusion)",
                     "assigned, cached": " (optimized graph from the cache, after fusion)"}


@dataclass
class StagePlacement:
    """Where one stage ran, and why there if not where it was asked to."""

    stage: str
    requested: str
    ran_on: str
    graph: str = ""        # the graph file's name, for people; code reads the session's manifest record
    graph_reason: str = ""
    node_counts: dict[str, int] = field(default_factory=dict)
    fallback_reason: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    # "assigned": graph nodes per EP as partitioned (ONNX Runtime's assignment record); "assigned, cached": the same
    # record for the already-optimized (fused) graph loaded from the optimized-graph cache; "profiled": kernels that
    # ran per EP in one profiled run, after fusion (older onnxruntime versions without the record)
    node_source: str = "assigned"
    # which onnxruntime ran the stage, in which process: {"onnxruntime", "python", "process", "pid"?, ...}
    runtime: dict[str, Any] = field(default_factory=dict)
    # Vitis AI EP only: operators per device from the EP's report or compile log ({"NPU": n, "VITIS_EP_CPU": m})
    npu_ops: dict[str, Any] | None = None

    @property
    def fell_back(self) -> bool:
        return self.ran_on != self.requested

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "requested": self.requested, "ran_on": self.ran_on, "graph": self.graph,
                "graph_reason": self.graph_reason, "node_counts": dict(self.node_counts),
                "node_source": self.node_source, "fallback_reason": self.fallback_reason, "options": dict(self.options),
                "device": self.device, "runtime": dict(self.runtime), "npu_ops": self.npu_ops}

    def describe(self) -> str:
        nodes = ", ".join(f"{short_ep(ep)} {n}" for ep, n in self.node_counts.items())
        parts = [f"{self.stage:8s} asked {short_ep(self.requested)}, ran on {short_ep(self.ran_on)}"]
        if self.graph:
            parts.append(f"graph {self.graph}" + (f" ({self.graph_reason})" if self.graph_reason else ""))
        if nodes:
            parts.append(f"nodes: {nodes}" + NODE_SOURCE_NOTES.get(self.node_source, ""))
        if self.npu_ops:
            counts = ", ".join(f"{k} {v}" for k, v in self.npu_ops.get("counts", {}).items())
            parts.append(f"Vitis AI operators: {counts} (from {self.npu_ops.get('source', '?')})")
        if self.device:
            parts.append(f"device: {self.device}")
        if self.runtime:
            where = self.runtime.get("process", "in-process")
            parts.append(f"onnxruntime {self.runtime.get('onnxruntime', '?')} {where}")
        if self.fallback_reason:
            parts.append(f"fallback: {self.fallback_reason}")
        return "; ".join(parts)


@dataclass
class PlacementReport:
    stages: list[StagePlacement]

    def stage(self, name: str) -> StagePlacement:
        for placement in self.stages:
            if placement.stage == name:
                return placement
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {p.stage: p.to_dict() for p in self.stages}

    def format(self) -> str:
        return "placement:\n" + "\n".join(f"  {p.describe()}" for p in self.stages)

    def summary(self) -> str:
        """`encoder CPU, rvq NumPy (CPU), decoder CPU` for the one-line summary (a worker stage says so)."""
        parts = []
        for p in self.stages:
            worker = " (worker)" if p.runtime.get("worker") else ""
            parts.append(f"{p.stage} {short_ep(p.ran_on)}{worker}")
        return ", ".join(parts)


def rvq_placement(model: ModelDir) -> StagePlacement:
    """The RVQ's files: the codebooks, and a factorized family's (DAC's) projections beside them."""
    names = [model.files[r].name for r in ("codebooks", "rvq_projections") if r in model.files]
    return StagePlacement("rvq", RVQ_LANE, RVQ_LANE, graph=" + ".join(names))


def processor_turns(placement: PlacementReport) -> dict[str, Any]:
    """Per graph stage, a lock shared with every other stage placed on the same execution provider.

    The lanes overlap so that the NPU, CPU and GPU work on different steps at once. Two graph sessions on the
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
