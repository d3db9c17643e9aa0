"""Which processor runs each stage: ordered EP preferences, probing, fallback, and the placement report.

Each graph stage has an ordered preference (encoder: the NPU's Vitis AI EP, then the CPU; decoder: WebGPU, MIGraphX,
CUDA, DirectML, then the CPU). An EP is tried only when this machine can actually run it — built into the installed
onnxruntime, or a plugin with a device — and a session that cannot be created moves on to the next EP. Falling back
is normal on a machine without the hardware, but never silent: one warning line per fallen-back stage, and the
placement report says, per stage, the EP asked for, the EP that ran, how many graph nodes each EP got (ONNX
Runtime's own assignment record, or its profiler on versions without one) and why the fallback happened.
`strict` turns any fallback into an error, and sets `session.disable_cpu_ep_fallback` so ONNX Runtime cannot
quietly move single nodes to the CPU either.

The encoder has two graphs: encoder.int8.onnx is made for the NPU, so it runs where the encoder runs on the Vitis
AI EP; on the CPU the FP32 graph runs (ONNX Runtime fuses Q/DQ into integer kernels on x86 only for uint8
activations, and the NPU presets use int8 ones, so on a CPU the INT8 graph is float Conv plus Q/DQ: slower and
less accurate). `encoder_graph="fp32"|"int8"` forces either.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.contract.steps import step_role
from apucodec.errors import ApucodecError
from apucodec.model_dir import ModelDir

CPU = "CPUExecutionProvider"
VITISAI = "VitisAIExecutionProvider"
WEBGPU = "WebGpuExecutionProvider"
MIGRAPHX = "MIGraphXExecutionProvider"
CUDA = "CUDAExecutionProvider"
DIRECTML = "DmlExecutionProvider"

STAGE_PREFERENCES: dict[str, tuple[str, ...]] = {
    "encoder": (VITISAI, CPU),
    "decoder": (WEBGPU, MIGRAPHX, CUDA, DIRECTML, CPU),
}
EP_ALIASES = {"vitisai": VITISAI, "npu": VITISAI, "cpu": CPU, "webgpu": WEBGPU, "migraphx": MIGRAPHX,
              "cuda": CUDA, "dml": DIRECTML, "directml": DIRECTML}
ENCODER_GRAPHS = ("auto", "fp32", "int8")
RVQ_LANE = "NumPy (CPU)"

Warn = Callable[[str], None]


def warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def resolve_ep_name(name: str) -> str:
    """A full EP name from a CLI spelling ("cpu", "webgpu", "VitisAIExecutionProvider", ...)."""
    key = name.strip()
    if key.lower() in EP_ALIASES:
        return EP_ALIASES[key.lower()]
    for full in EP_ALIASES.values():
        if key.lower() == full.lower():
            return full
    if key.endswith("ExecutionProvider"):
        return key
    raise ApucodecError(f"unknown execution provider {name!r}; use one of {', '.join(sorted(EP_ALIASES))} "
                        "or a full onnxruntime provider name")


def parse_ep_list(text: str | None, stage: str) -> tuple[str, ...]:
    """--encoder-ep / --decoder-ep: a comma-separated order, or the stage's default order."""
    if not text:
        return STAGE_PREFERENCES[stage]
    order = tuple(dict.fromkeys(resolve_ep_name(part) for part in text.split(",") if part.strip()))
    if not order:
        raise ApucodecError(f"--{stage}-ep: no execution provider named")
    return order


@dataclass
class StagePlacement:
    """Where one stage ran, and why there if not where it was asked to."""

    stage: str
    requested: str
    ran_on: str
    graph: str = ""
    graph_reason: str = ""
    node_counts: dict[str, int] = field(default_factory=dict)
    fallback_reason: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    # "assigned": graph nodes per EP as partitioned (ONNX Runtime's assignment record); "profiled": kernels that ran
    # per EP in one profiled run, after fusion (older onnxruntime versions without the record)
    node_source: str = "assigned"

    @property
    def fell_back(self) -> bool:
        return self.ran_on != self.requested

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "requested": self.requested, "ran_on": self.ran_on, "graph": self.graph,
                "graph_reason": self.graph_reason, "node_counts": dict(self.node_counts),
                "node_source": self.node_source, "fallback_reason": self.fallback_reason, "options": dict(self.options),
                "device": self.device}

    def describe(self) -> str:
        nodes = ", ".join(f"{short_ep(ep)} {n}" for ep, n in self.node_counts.items())
        parts = [f"{self.stage:8s} asked {short_ep(self.requested)}, ran on {short_ep(self.ran_on)}"]
        if self.graph:
            parts.append(f"graph {self.graph}" + (f" ({self.graph_reason})" if self.graph_reason else ""))
        if nodes:
            parts.append(f"nodes: {nodes}" + (" (kernels run, after fusion)" if self.node_source == "profiled" else ""))
        if self.device:
            parts.append(f"device: {self.device}")
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
        """`encoder CPU, rvq NumPy (CPU), decoder CPU` for the one-line summary."""
        return ", ".join(f"{p.stage} {short_ep(p.ran_on)}" for p in self.stages)


def short_ep(name: str) -> str:
    return name.removesuffix("ExecutionProvider") if name.endswith("ExecutionProvider") else name


def rvq_placement(model: ModelDir) -> StagePlacement:
    return StagePlacement("rvq", RVQ_LANE, RVQ_LANE, graph=model.files["codebooks"]["name"])


@dataclass
class StageSession:
    """One ONNX Runtime session for a step graph (input, state, bounds -> output, next state), and where it ran."""

    session: Any  # onnxruntime.InferenceSession
    placement: StagePlacement
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(list(self.output_names), feeds), strict=True))

    def step(self, x: np.ndarray, state: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step: the graph's main input, its state and bounds -> its main output and the next state."""
        out = self.session.run(list(self.output_names), dict(zip(self.input_names, (x, state, bounds), strict=True)))
        return out[0], out[1]


@dataclass
class SessionSettings:
    """What the caller decides about sessions: EP order per stage, strictness, threads, EP options."""

    encoder_eps: Sequence[str] = STAGE_PREFERENCES["encoder"]
    decoder_eps: Sequence[str] = STAGE_PREFERENCES["decoder"]
    encoder_graph: str = "auto"
    strict: bool = False
    threads: int = 0  # intra-op threads per session; 0 = onnxruntime's default
    # Let idle intra-op threads busy-wait for the next operator. Off by default: the encoder and decoder sessions
    # and the RVQ lane run at the same time, and a spinning pool takes the cores the other stages are waiting for
    # (apucodec bench, default model on 2 cores: pipelined RTF ~0.99 spinning vs ~0.83 not).
    spin: bool = False
    ep_options: dict[str, dict[str, str]] = field(default_factory=dict)  # EP name -> options (CLI, over manifest)


def _ort():
    import onnxruntime as ort

    return ort


@dataclass
class _Availability:
    ok: bool
    reason: str | None = None
    device: Any = None        # an OrtEpDevice for plugin EPs (add_provider_for_devices)
    device_label: str | None = None


def probe_ep(ep: str) -> _Availability:
    """Can this machine create a session on `ep`? Never raises; says why not."""
    ort = _ort()
    if ep == CPU:
        return _Availability(True)
    if ep == WEBGPU:
        from apucodec.runtime.webgpu import find_webgpu_devices

        probe = find_webgpu_devices()
        if not probe.available:
            return _Availability(False, probe.reason)
        return _Availability(True, device=probe.device, device_label=probe.describe())
    if ep in ort.get_available_providers():
        return _Availability(True)
    devices = [d for d in ort.get_ep_devices() if d.ep_name == ep] if hasattr(ort, "get_ep_devices") else []
    if devices:
        return _Availability(True, device=devices[0], device_label=f"{devices[0].ep_vendor} {ep}")
    hint = {VITISAI: " (it comes with AMD's Ryzen AI software: onnxruntime-vitisai)",
            MIGRAPHX: " (onnxruntime-migraphx, ROCm)", CUDA: " (onnxruntime-gpu)",
            DIRECTML: " (onnxruntime-directml, Windows)"}.get(ep, "")
    return _Availability(False, f"not in this onnxruntime build{hint}")


def stage_ep_options(model: ModelDir, ep: str, settings: SessionSettings, graph_path: Path) -> dict[str, str]:
    """EP options: the manifest's `providers` section, overridden by the caller's, plus a per-graph cache key.

    Relative paths in the manifest (e.g. a Vitis AI cache_dir) are relative to the model directory, so a model
    directory can be moved; nothing here invents a path of its own.
    """
    section = model.manifest.get("providers") or {}
    options: dict[str, str] = {}
    for key, value in section.items():
        if isinstance(value, dict) and _same_ep(key, ep):
            options.update({str(k): str(v) for k, v in value.items()})
    for key, value in settings.ep_options.items():
        if _same_ep(key, ep):
            options.update({str(k): str(v) for k, v in value.items()})
    if ep == VITISAI:
        if "cache_dir" in options and not Path(options["cache_dir"]).is_absolute():
            options["cache_dir"] = str((model.path / options["cache_dir"]).resolve())
        # The NPU compile cache is keyed per graph: the FP32 and INT8 encoders must never share an entry.
        options.setdefault("cache_key", f"apucodec-{model.model_id}-{graph_path.stem.replace('.', '-')}")
    return options


def _same_ep(key: str, ep: str) -> bool:
    try:
        return resolve_ep_name(key) == ep
    except ApucodecError:
        return False


def choose_encoder_graph(model: ModelDir, ep: str, mode: str, step_frames: int) -> tuple[str, str]:
    """(role, reason): the INT8 graph on the NPU, FP32 elsewhere, unless `mode` forces one."""
    if mode not in ENCODER_GRAPHS:
        raise ApucodecError(f"--encoder must be one of {', '.join(ENCODER_GRAPHS)}, not {mode!r}")
    fp32 = step_role("encoder", step_frames)
    int8 = step_role("encoder", step_frames, "npu-int8")
    if mode == "int8":
        if not model.has(int8):
            raise ApucodecError(f"{model.path}: --encoder int8 asked for, but the model directory has no INT8 "
                                f"encoder at the {step_frames}-frame step (run 'apucodec quantize-encoder')")
        return int8, "forced by --encoder int8"
    if mode == "fp32":
        return fp32, "forced by --encoder fp32"
    if ep == VITISAI:
        if model.has(int8):
            return int8, "INT8 graph for the NPU"
        return fp32, "no INT8 encoder in the model directory (run 'apucodec quantize-encoder')"
    reason = "FP32 on the CPU: the INT8 graph is for the NPU" if ep == CPU else f"FP32 graph on {short_ep(ep)}"
    return fp32, reason


def _session_options(settings: SessionSettings, strict_ep: bool, profile_dir: str | None) -> Any:
    ort = _ort()
    so = ort.SessionOptions()
    so.log_severity_level = 3  # placement is reported by us; ORT's own warnings would repeat it on stderr
    if settings.threads:
        so.intra_op_num_threads = settings.threads
        so.inter_op_num_threads = 1
    if not settings.spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if strict_ep:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile_dir, "placement")
    return so


def _needs_profiler() -> bool:
    return not hasattr(_ort().InferenceSession, "get_provider_graph_assignment_info")


def _create_session(path: Path, ep: str, availability: _Availability, options: dict[str, str],
                    settings: SessionSettings, profile_dir: str | None) -> Any:
    """An InferenceSession on `ep` (plus the CPU EP for unsupported nodes unless strict)."""
    ort = _ort()
    strict_ep = settings.strict and ep != CPU
    so = _session_options(settings, strict_ep, profile_dir)
    captured = io.StringIO()
    # onnxruntime's Python wrapper prints its own "falling back to CPU" banner on stdout when an EP fails; we
    # report fallbacks ourselves, from what actually happened, so keep its banner out of the user's output.
    with contextlib.redirect_stdout(captured):
        if availability.device is not None:
            if ep == WEBGPU:
                from apucodec.runtime.webgpu import add_webgpu_provider

                add_webgpu_provider(so, availability.device, options)
            else:
                so.add_provider_for_devices([availability.device], options)
            session = ort.InferenceSession(str(path), so)
        else:
            providers: list[Any] = [(ep, options) if options else ep]
            if ep != CPU and not strict_ep:
                providers.append(CPU)
            session = ort.InferenceSession(str(path), so, providers=providers)
    if ep != CPU and ep not in session.get_providers():
        banner = next((line for line in captured.getvalue().splitlines() if "EP Error" in line), "")
        raise RuntimeError(banner.split("EP Error", 1)[-1].strip(" :") or f"onnxruntime did not enable {ep}")
    return session


def _node_counts(session: Any, shapes: dict[str, Sequence[int]], profile_dir: str | None) -> Counter:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.replace("[ONNXRuntimeError] : ", "")


def open_stage_session(model: ModelDir, stage: str, settings: SessionSettings, step_frames: int,
                       warn: Warn | None = warn_stderr) -> StageSession:
    """Open `stage` ("encoder" or "decoder") on the first EP of its order that works, and report where it ran."""
    order = list(dict.fromkeys(resolve_ep_name(ep) for ep in
                               (settings.encoder_eps if stage == "encoder" else settings.decoder_eps)))
    if not order:
        raise ApucodecError(f"{stage}: no execution provider to try")
    requested = order[0]
    candidates = order if settings.strict or CPU in order else [*order, CPU]
    failures: list[tuple[str, str]] = []
    for ep in candidates:
        if settings.strict and ep != requested:
            break
        availability = probe_ep(ep)
        if not availability.ok:
            failures.append((ep, availability.reason or "unavailable"))
            continue
        if stage == "encoder":
            role, graph_reason = choose_encoder_graph(model, ep, settings.encoder_graph, step_frames)
        else:
            role, graph_reason = step_role("decoder", step_frames), ""
        path = model.path_of(role)
        expected = {t["name"]: t["shape"] for t in model.files[role]["inputs"]}
        options = stage_ep_options(model, ep, settings, path)
        with tempfile.TemporaryDirectory(prefix="apucodec-profile-") as tmp:
            profile_dir = tmp if _needs_profiler() else None
            try:
                session = _create_session(path, ep, availability, options, settings, profile_dir)
                input_names, output_names = _check_io(session, path, expected)
                counts = _node_counts(session, expected, profile_dir)
            except ApucodecError:
                raise
            except Exception as exc:  # onnxruntime's pybind errors have no common base we can name
                failures.append((ep, f"session creation failed: {_first_line(exc)}"))
                continue
        if ep != CPU and counts and counts.get(ep, 0) == 0:
            failures.append((ep, "it took none of the graph's nodes"))
            continue
        placement = StagePlacement(stage, requested, ep, graph=path.name, graph_reason=graph_reason,
                                   node_counts=dict(counts.most_common()), options=options,
                                   device=availability.device_label,
                                   node_source="profiled" if profile_dir else "assigned")
        if ep != requested:
            placement.fallback_reason = _failure_text(failures)
            if warn is not None:
                first = failures[0][1] if failures and failures[0][0] == requested else "unavailable"
                others = [short_ep(e) for e, _ in failures if e != requested]
                also = f"; {', '.join(others)} also unavailable (see --report)" if others else ""
                warn(f"{stage}: running on {short_ep(ep)}, not {short_ep(requested)} ({first}{also})")
        return StageSession(session, placement, input_names, output_names)
    text = _failure_text(failures)
    if settings.strict:
        raise ApucodecError(f"{stage}: {requested} cannot run it ({text}); --strict forbids falling back")
    raise ApucodecError(f"{stage}: no execution provider could run it ({text})")


def _failure_text(failures: list[tuple[str, str]]) -> str:
    """'WebGpu: why; MIGraphX, CUDA: not in this build' — EPs with the same reason grouped."""
    grouped: dict[str, list[str]] = {}
    for ep, reason in failures:
        grouped.setdefault(reason, []).append(short_ep(ep))
    return "; ".join(f"{', '.join(eps)}: {reason}" for reason, eps in grouped.items())


def _check_io(session: Any, path: Path, expected: dict[str, Sequence[int]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The graph's inputs must be the manifest's, in order, with the same static shapes."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    found = {i.name: list(i.shape) for i in inputs}
    want = {name: list(shape) for name, shape in expected.items()}
    if found != want or len(outputs) != 2:
        raise ApucodecError(f"{path}: graph inputs {found} (and {len(outputs)} outputs) do not match the manifest's "
                            f"step graph {want} (2 outputs)")
    return tuple(expected), tuple(o.name for o in outputs)


def open_sessions(model: ModelDir, settings: SessionSettings, warn: Warn | None = warn_stderr,
                  stages: Sequence[str] = ("encoder", "decoder"),
                  step_frames: int | None = None) -> tuple[dict[str, StageSession], PlacementReport]:
    """Sessions for the graph stages a command needs at one step size (default: the largest, the offline step),
    and the placement report (rvq included)."""
    sessions = {}
    for stage in stages:
        sizes = model.step_sizes(stage)
        step = max(sizes) if step_frames is None else step_frames
        if step not in sizes:
            raise ApucodecError(f"{model.path}: no {stage} step graph of {step} frames (this model has "
                                f"{', '.join(map(str, sizes))}; re-export with --step-frames)")
        sessions[stage] = open_stage_session(model, stage, settings, step, warn)
    placements = []
    if "encoder" in sessions:
        placements.append(sessions["encoder"].placement)
    placements.append(rvq_placement(model))
    if "decoder" in sessions:
        placements.append(sessions["decoder"].placement)
    return sessions, PlacementReport(placements)
