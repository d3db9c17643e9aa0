"""Step networks -> checked ONNX graphs, their manifest entries, and the versions that made them: the export steps
every family shares.

`export_model` (apucodec/export/model_export.py) and the EnCodec export (encodec_export.py) both run these, so the
export / simplify / check sequence, the step graphs' file entries and the manifest's producer versions are written
once.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

from apucodec import __version__
from apucodec.contract.manifest import FileEntry, GraphFacts
from apucodec.export import cost, graph
from apucodec.export.specs import GraphSpec
from apucodec.export.streaming import StepNetwork
from apucodec.model.directory import file_entry
from apucodec.model.passes import StepLog


def producers(simplifier: str) -> dict[str, str]:
    found = {"apucodec": __version__, "torch": str(torch.__version__), "onnx": onnx.__version__,
             "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "python": platform.python_version()}
    if simplifier != "none":
        tool, version = simplifier.split(" ", 1)
        found[tool] = version
    return found


def step_graphs(modules: dict[str, StepNetwork], specs: dict[str, GraphSpec], opset: int, simplify: bool,
                steps: StepLog) -> tuple[dict[str, onnx.ModelProto], dict[str, GraphFacts], str, str]:
    """plain modules -> exported, simplified, checked ModelProtos, with node counts before/after simplification."""
    protos: dict[str, onnx.ModelProto] = {}
    graph_info: dict[str, GraphFacts] = {}
    exporter, simplifier = "", "none"
    for role, spec in specs.items():
        with steps.step(f"export {spec.filename}") as said:
            proto, exporter = graph.to_onnx(modules[role], spec, opset)
            before = graph.node_summary(proto)
            said.append(f"{before['nodes']} nodes, opset {opset}, {exporter}")
        after = before
        if simplify:
            with steps.step(f"simplify {spec.filename}") as said:
                proto, simplifier = graph.simplify(proto)
                after = graph.node_summary(proto)
                said.append(f"{before['nodes']} -> {after['nodes']} nodes ({simplifier})")
        with steps.step(f"check {spec.filename}") as said:
            graph.check(proto, spec, opset)
            said.append("onnx.checker full check passed; static batch-1 shapes "
                        f"{list(spec.input.shape)} -> {list(spec.output.shape)}")
        protos[role] = proto
        graph_info[role] = GraphFacts(nodes_exported=before["nodes"], nodes=after["nodes"], ops=after["ops"],
                                      opset=opset, gflop=cost.graph_gflop(proto))
    return protos, graph_info, exporter, simplifier


def step_file_entries(specs: dict[str, GraphSpec], networks: dict[str, Any], paths: dict[str, Path],
                      graph_info: dict[str, GraphFacts],
                      external: dict[str, Any] | None = None) -> dict[str, FileEntry]:
    """The FP32 step graphs' manifest entries: stage, step, state and horizon from the network, the tensors from
    the spec, graph facts, and the shared weights file each reads (`external`, by role) where it has one."""
    external = external or {}
    files: dict[str, FileEntry] = {}
    for role, spec in specs.items():
        net = networks[role]
        files[role] = file_entry(paths[role], role, stage=spec.stage, step_frames=spec.step_frames, precision="fp32",
                                 state_size=net.state_size, horizon_frames=net.horizon_frames,
                                 inputs=[t.entry() for t in spec.inputs], outputs=[t.entry() for t in spec.outputs],
                                 graph=graph_info[role],
                                 **({"external_data": external[role]} if role in external else {}))
    return files
