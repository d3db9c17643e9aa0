"""A stage session served by a worker process, indistinguishable to the engine from an in-process one.

`WorkerSession.run_feeds({name: array})` copies the step's inputs into the shared-memory buffer, sends one "run"
line, waits for the answer (up to the per-step timeout) and copies the outputs back out: the per-step cost over an
in-process session is two memcpys of the step and one pipe round trip (benchmarks/workers.py measures it).
The worker reports its onnxruntime version, EPs and node placement, which land in the placement report.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.contract.manifest import FileEntry
from apucodec.errors import ApucodecError
from apucodec.model.directory import ModelDir
from apucodec.runtime.eps import INSTALL_HINTS, VITISAI, WEBGPU, Warn, warn_stderr
from apucodec.runtime.placement import StagePlacement
from apucodec.runtime.stage_plan import SessionSettings, failure_text, fallback_warning, stage_candidates
from apucodec.runtime.vitisai import session_severity, write_bf16_config
from apucodec.runtime.vitisai_report import check_npu_only, find_counts
from apucodec.runtime.workers.process import WorkerProcess, shared_memory_file

OPEN_TIMEOUT_FACTOR = 10  # opening compiles the graph (minutes on a cold NPU cache): 10 step timeouts


@dataclass
class WorkerSession:
    """The engine's view of a stage in a worker: static inputs/outputs, run_feeds, placement, and the manifest entry
    of the step graph it runs (`record`, as an in-process StageSession)."""

    worker: WorkerProcess
    placement: StagePlacement
    inputs: dict[str, tuple[int, ...]]
    output_shapes: dict[str, tuple[int, ...]]
    timeout: float
    record: FileEntry
    _views: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    # A whole-sequence graph's largest call (named axis -> size), None for a step graph; with the buffer and each
    # tensor's (offset, room) in it, since each call has its own shapes.
    capacity: dict[str, int] | None = None
    _buffer: Any = field(default=None, repr=False)
    _offsets: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def max_frames(self) -> int | None:
        """Frames one call may take (a whole-sequence graph in a worker: its buffer's size), None: no limit."""
        return self.capacity["frames"] if self.capacity else None

    @property
    def outputs(self) -> list[str]:
        return list(self.output_shapes)

    def run_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.capacity:
            return self._run_sized(feeds)
        for name, shape in self.inputs.items():
            value = feeds.get(name)
            if value is None:
                raise ApucodecError(f"{self.worker.label}: no value for input {name!r}")
            if tuple(np.shape(value)) != shape:
                raise ApucodecError(f"{self.worker.label}: input {name!r} has shape {list(np.shape(value))}, "
                                    f"the graph takes {list(shape)}")
            np.copyto(self._views[name], value, casting="same_kind")
        answer = self.worker.request({"cmd": "run"}, self.timeout)
        if not answer.get("ok"):
            raise ApucodecError(f"{self.worker.label}: {answer.get('error', 'step failed')}")
        return {name: self._views[name].copy() for name in self.output_shapes}

    def _view(self, name: str, shape: Sequence[int]) -> np.ndarray:
        offset, room = self._offsets[name]
        if 4 * int(np.prod(shape)) > room:
            raise ApucodecError(f"{self.worker.label}: {name!r} of shape {list(shape)} is larger than the worker's "
                                f"buffer ({room} bytes)")
        return np.ndarray(tuple(shape), np.float32, self._buffer, offset)

    def _run_sized(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One call of a whole-sequence graph: each input at its own length, within the buffer's capacity."""
        shapes = {}
        for name, largest in self.inputs.items():
            value = feeds.get(name)
            if value is None:
                raise ApucodecError(f"{self.worker.label}: no value for input {name!r}")
            if np.ndim(value) != len(largest):
                raise ApucodecError(f"{self.worker.label}: input {name!r} has shape {list(np.shape(value))}, "
                                    f"the graph takes rank {len(largest)}")
            np.copyto(self._view(name, np.shape(value)), value, casting="same_kind")
            shapes[name] = list(np.shape(value))
        answer = self.worker.request({"cmd": "run", "shapes": shapes}, self.timeout)
        if not answer.get("ok"):
            raise ApucodecError(f"{self.worker.label}: {answer.get('error', 'step failed')}")
        return {name: self._view(name, answer["shapes"][name]).copy() for name in self.output_shapes}

    def close(self) -> None:
        self._views.clear()
        self.worker.close()


def _candidates_for_worker(model: ModelDir, stage: str, settings: SessionSettings) -> tuple[str, list[Any], list]:
    requested, candidates = stage_candidates(model, stage, settings)
    wire = []
    for index, cand in enumerate(candidates):
        severity = 3
        if cand.ep == VITISAI:
            severity = session_severity(cand.options)
            severity = 1 if severity is None else severity  # INFO: the EP's operator counts are logged at INFO
            if "config_file" in cand.options:
                write_bf16_config(Path(cand.options["config_file"]), settings.bf16_optimize_level)
        options = {k: v for k, v in cand.options.items() if k != "log_level"}
        wire.append({"index": index, "ep": cand.ep, "path": str(cand.path), "options": options,
                     "graph_reason": cand.graph_reason, "severity": severity, "hint": INSTALL_HINTS.get(cand.ep, ""),
                     "compiling": cand.ep == VITISAI, "plugin": _plugin(cand.ep)})
    return requested, wire, candidates


def _plugin(ep: str) -> list[str] | None:
    """[module, registration name] for a plugin EP, as this process registers it (the child spells no EP names)."""
    if ep != WEBGPU:
        return None
    from apucodec.runtime.webgpu import PLUGIN_MODULE, REGISTRATION_NAME

    return [PLUGIN_MODULE, REGISTRATION_NAME]


def _whole_sizes(model: ModelDir, role: str, settings: SessionSettings) -> tuple[dict | None, dict | None]:
    """(probe sizes, capacity) of a whole-sequence graph's named axes, (None, None) for a step graph: the capacity
    is one segment (apucodec/runtime/segmented_stages.py), decided now since the worker's buffer is mapped once."""
    from apucodec.runtime.segmented_stages import segment_frames, whole_dims

    dims = whole_dims(model, role)
    if dims is None:
        return None, None
    frames = segment_frames(model.config, settings.whole_max_seconds)[0]
    return dims, {"frames": frames, "samples": frames * model.hop}


def _check_expected(label: str, inputs: dict[str, tuple[int, ...]],
                    expected: Mapping[str, Sequence[int]] | Sequence[int] | None, graph: str) -> None:
    """The same check as an in-process session's (apucodec.runtime.sessions.check_io)."""
    from apucodec.runtime.graph_io import check_io

    check_io(inputs, graph, expected)


def open_worker_session(model: ModelDir, stage: str, settings: SessionSettings,
                        expected: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
                        warn: Warn | None = warn_stderr) -> WorkerSession:
    """Start the stage's worker, open its session on the first EP that works there, map the step buffer."""
    python = settings.workers[stage]
    python = sys.executable if python == "self" else python
    requested, wire, candidates = _candidates_for_worker(model, stage, settings)
    dims, capacity = _whole_sizes(model, candidates[0].role, settings) if candidates else (None, None)
    worker = WorkerProcess(stage, python)
    shm = shared_memory_file(stage)
    try:
        answer = worker.request({"cmd": "open", "candidates": wire, "shm": str(shm), "dims": dims,
                                 "capacity": capacity,
                                 "settings": {"threads": settings.threads, "spin": settings.spin,
                                              "strict": settings.strict, "ep_context": settings.ep_context,
                                              "arena": capacity is not None}},
                                settings.worker_timeout * OPEN_TIMEOUT_FACTOR)
        runtime = {**answer.get("runtime", {}), "worker": True}
        if not answer.get("ok"):
            if "error" in answer:
                raise ApucodecError(f"{worker.label}: {answer['error']}")
            text = failure_text([tuple(f) for f in answer.get("failures", [])])
            where = f"in its onnxruntime {runtime.get('onnxruntime', '?')}"
            if settings.strict:
                raise ApucodecError(f"{stage}: {requested} cannot run it {where} ({text}); --strict forbids "
                                    "falling back")
            raise ApucodecError(f"{stage}: no execution provider could run it {where} ({text})")
        views_buffer = worker.map_buffer(shm, int(answer["size"]))
    except BaseException:
        worker.close()
        raise
    finally:
        shm.unlink(missing_ok=True)  # both sides have it mapped (or gave up): the name is no longer needed
    inputs = {k: tuple(v) for k, v in answer["inputs"].items()}
    outputs = {k: tuple(v) for k, v in answer["outputs"].items()}
    done = answer["placement"]
    graph = done["path"].rsplit("/", 1)[-1]
    runtime["process"] = f"in worker pid {runtime.get('pid')} ({runtime.get('python')})"
    placement = StagePlacement(stage, requested, done["ran_on"], graph=graph, graph_reason=done["graph_reason"],
                               node_counts=dict(sorted(done["node_counts"].items(), key=lambda kv: -kv[1])),
                               options=done["options"], node_source=done["node_source"], runtime=runtime)
    chosen = candidates[int(done["candidate"])]  # the child says which candidate opened
    session = WorkerSession(worker, placement, inputs, outputs, settings.worker_timeout,
                            chosen.record or model.files[chosen.role], capacity=capacity,
                            _buffer=views_buffer, _offsets={k: tuple(v) for k, v in answer["offsets"].items()})
    weakref.finalize(session, worker.close)
    try:
        _check_expected(worker.label, inputs, expected, done["path"])
        failures = [tuple(f) for f in done["failures"]]
        if placement.ran_on == VITISAI:
            opts = done["options"]
            npu = find_counts(opts.get("cache_dir"), opts.get("cache_key"), worker.stderr_text())
            placement.npu_ops = npu.to_dict() if npu else None
            if settings.strict:
                check_npu_only(stage, npu)
        if placement.ran_on != requested:
            placement.fallback_reason = failure_text(failures)
            message = fallback_warning(stage, requested, placement.ran_on, failures, settings,
                                       done["hardware_failed"])
            if message and warn is not None:
                warn(message)
    except BaseException:
        worker.close()
        raise
    for name, (offset, _nbytes) in answer["offsets"].items():
        shape = inputs.get(name) or outputs[name]
        session._views[name] = np.ndarray(shape, np.float32, views_buffer, offset)
    return session
