"""What a step graph's session takes and where its nodes ran: static input shapes read from the graph, checked
against what the engine will feed (the manifest's step-graph entry), and nodes per EP from ONNX Runtime's own
assignment record (or one profiled run on versions without it). Shared by in-process and worker sessions."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.errors import ApucodecError
from apucodec.model.directory import ModelDir

Shapes = Mapping[str, Sequence[int]]


def static_inputs(session: Any, path: Path, dynamic: Mapping[str, int] | None = None) -> dict[str, tuple[int, ...]]:
    """Every input's shape from the graph itself; step graphs are static, so a symbolic dim is refused, except in
    a whole-sequence graph, whose named time axis (`dynamic`: name -> an example size) is sized for probing."""
    shapes = {}
    for node in session.get_inputs():
        dims = [dynamic.get(d, d) if dynamic and isinstance(d, str) else d for d in node.shape]
        if not all(isinstance(d, int) and d > 0 for d in dims):
            raise ApucodecError(f"{path}: input {node.name!r} has shape {dims}; the runtime needs static shapes")
        shapes[node.name] = tuple(dims)
    return shapes


def node_counts(session: Any, shapes: Shapes, profile_dir: str | None) -> Counter:
    """Graph nodes per EP, from ONNX Runtime's assignment record, or from one profiled run on older versions."""
    counts: Counter = Counter()
    if profile_dir is None:
        for subgraph in session.get_provider_graph_assignment_info():
            counts[subgraph.ep_name] += len(subgraph.get_nodes())
        return counts
    session.run(None, {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()})
    profile = session.end_profiling()
    try:
        events = json.loads(Path(profile).read_text())
    finally:
        Path(profile).unlink(missing_ok=True)
    seen: dict[str, str] = {}
    for event in events:
        provider = event.get("args", {}).get("provider")
        if event.get("cat") == "Node" and provider:
            seen[event["name"].removesuffix("_kernel_time").removesuffix("_fence_before").removesuffix(
                "_fence_after")] = provider
    counts.update(seen.values())
    return counts


def check_io(shapes: dict[str, tuple[int, ...]], path: Path, expected: Shapes | Sequence[int] | None) -> None:
    """The graph's static input shapes against what the engine will feed (a bare shape: the one input's)."""
    if expected is None:
        return
    if not isinstance(expected, Mapping):
        if len(shapes) != 1:
            raise ApucodecError(f"{path}: expected one input, found {len(shapes)} ({', '.join(shapes)})")
        expected = {next(iter(shapes)): expected}
    for name, shape in expected.items():
        if name not in shapes:
            raise ApucodecError(f"{path}: has no input {name!r} (inputs: {', '.join(shapes)})")
        got, want = list(shapes[name]), list(shape)
        # a str dim is a whole-sequence graph's named time axis: any size
        if len(got) != len(want) or any(g != w for g, w in zip(got, want, strict=True) if not isinstance(w, str)):
            raise ApucodecError(f"{path}: input {name!r} has shape {list(shapes[name])}, the manifest's step graph "
                                f"says {list(shape)}")


def manifest_inputs(model: ModelDir, role: str) -> dict[str, list[int]]:
    """The inputs, in order, that the manifest says a step graph has (what the engine will feed)."""
    return {t.name: list(t.shape) for t in model.files[role].inputs or []}
