"""ONNX Runtime sessions per graph stage: creation on the first EP that works, fallback, and node placement.

A stage's EP order and graph candidates come from apucodec.runtime.stage_plan; this module opens them in this
process (or hands the stage to a worker process, apucodec.runtime.workers, when the settings say so). A session
that cannot be created moves on to the next EP; falling back is normal on a machine without the hardware and
warned about only when it is news (see stage_plan.fallback_warning). `strict` turns any fallback into an error
and sets `session.disable_cpu_ep_fallback`, so ONNX Runtime cannot quietly move single nodes to the CPU either; on
the Vitis AI EP it also requires the EP's own operator counts to show nothing on the CPU.

Sessions are generic over static multi-input/multi-output graphs: `run_feeds({name: array}) -> {name: array}`;
session and run options come from apucodec.runtime.ort_options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apucodec.contract.manifest import FileEntry
from apucodec.contract.steps import step_role
from apucodec.errors import ApucodecError, PlacementError, first_line
from apucodec.model.directory import ModelDir
from apucodec.model.work_dirs import work_dir
from apucodec.runtime.eps import CPU, VITISAI, WEBGPU, Warn, probe_ep, warn_stderr
from apucodec.runtime.graph_io import Shapes, check_io, manifest_inputs, node_counts, static_inputs
from apucodec.runtime.ort_options import needs_profiler, session_options, whole_sequence_run_options
from apucodec.runtime.placement import PlacementReport, StagePlacement, rvq_placement
from apucodec.runtime.segmented_stages import whole_dims
from apucodec.runtime.session_cache import cpu_session_through_cache
from apucodec.runtime.stage_plan import (
    SessionSettings,
    failure_text,
    fallback_warning,
    stage_candidates,
    step_frames_for,
)
from apucodec.runtime.vitisai import session_severity, write_bf16_config
from apucodec.runtime.vitisai_report import check_npu_only, find_counts


@dataclass
class StageSession:
    """One ONNX Runtime session, its static inputs/outputs, where it was placed, and the manifest entry of the step
    graph it runs (`record`: role, step frames, state, precision; see stage_plan.Candidate)."""

    session: Any  # onnxruntime.InferenceSession
    placement: StagePlacement
    inputs: dict[str, tuple[int, ...]]
    outputs: list[str]
    record: FileEntry
    _closers: list[Any] = field(default_factory=list, repr=False)
    run_options: Any = None  # onnxruntime.RunOptions (a whole-sequence graph's: see whole_sequence_run_options)

    def run_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [name for name in self.inputs if name not in feeds]
        if missing:
            raise ApucodecError(f"{self.placement.graph}: no value for input {', '.join(map(repr, missing))}")
        return dict(zip(self.outputs, self.session.run(self.outputs, dict(feeds), self.run_options), strict=True))

    def close(self) -> None:
        for close in self._closers:
            close()


@contextlib.contextmanager
def _stderr_to(buffer: io.StringIO, active: bool) -> Any:
    """Capture fd 2 (where the Vitis AI EP logs its operator counts) while `active`; a no-op otherwise."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            buffer.write(tmp.read().decode(errors="replace"))


def create_session(path: Path, ep: str, availability: Any, options: dict[str, str], settings: SessionSettings,
                   profile_dir: str | None, log: io.StringIO | None = None,
                   graph_sha: str | None = None, arena: bool = False) -> tuple[Any, bool]:
    """(An InferenceSession on `ep` (plus the CPU EP for unsupported nodes unless strict), whether it loaded an
    optimized graph from the cache). On the CPU EP, a graph whose manifest sha256 is given goes through the
    optimized-graph cache."""
    import onnxruntime as ort
    strict_ep = settings.strict and ep != CPU
    vitisai = ep == VITISAI
    severity = (session_severity(options) if session_severity(options) is not None else 1) if vitisai else None
    so = session_options(settings, strict_ep, profile_dir, severity, compiling=vitisai, arena=arena)
    options = {k: v for k, v in options.items() if k != "log_level"}
    if vitisai and "config_file" in options:
        write_bf16_config(Path(options["config_file"]), settings.bf16_optimize_level)
    captured = io.StringIO()
    from_cache = False
    # onnxruntime's Python wrapper prints its own "falling back to CPU" banner on stdout when an EP fails; we
    # report fallbacks ourselves, from what actually happened, so keep its banner out of the user's output.
    with contextlib.redirect_stdout(captured), _stderr_to(log if log is not None else io.StringIO(), vitisai):
        if availability.device is not None:
            if ep == WEBGPU:
                from apucodec.runtime.webgpu import add_webgpu_provider

                add_webgpu_provider(so, availability.device, options)
            else:
                so.add_provider_for_devices([availability.device], options)
            session = ort.InferenceSession(str(path), so)
        elif ep == CPU and graph_sha and not options:
            # ORT's optimized graph from the user cache when an earlier session saved it (runtime/session_cache.py)
            session, from_cache = cpu_session_through_cache(
                ort, path, graph_sha, so,
                lambda: session_options(settings, False, profile_dir, None, compiling=False, arena=arena))
        else:
            providers: list[Any] = [(ep, options) if options else ep]
            if ep != CPU and not strict_ep:
                providers.append(CPU)
            session = ort.InferenceSession(str(path), so, providers=providers)
    if ep != CPU and ep not in session.get_providers():
        banner = next((line for line in captured.getvalue().splitlines() if "EP Error" in line), "")
        raise RuntimeError(banner.split("EP Error", 1)[-1].strip(" :") or f"onnxruntime did not enable {ep}")
    return session, from_cache


def _first_line(exc: BaseException) -> str:
    return first_line(exc).replace("[ONNXRuntimeError] : ", "")  # the prefix says nothing the line does not


def open_cpu_session(model: ModelDir, role: str, settings: SessionSettings) -> StageSession:
    """`role`'s graph on the CPU EP in this process, with the stage's session options (INT8 floor fallback)."""
    path = model.path_of(role)
    try:
        session, _ = create_session(path, CPU, probe_ep(CPU), {}, settings, None,
                                    graph_sha=model.content_sha256(role), arena=bool(model.files[role].whole_sequence))
    except Exception as exc:  # onnxruntime's pybind errors have no common base we can name
        raise ApucodecError(f"{path}: cannot open it on the CPU EP ({_first_line(exc)})") from None
    shapes = static_inputs(session, path, whole_dims(model, role))
    check_io(shapes, path, manifest_inputs(model, role))
    record = model.files[role]
    placement = StagePlacement(record.stage or record.whole_sequence or role, CPU, CPU, graph=path.name)
    return StageSession(session, placement, shapes, [o.name for o in session.get_outputs()], record,
                        run_options=whole_sequence_run_options(bool(record.whole_sequence)))


def open_stage_session(model: ModelDir, stage: str, settings: SessionSettings,
                       expected_input: Shapes | Sequence[int] | None = None,
                       warn: Warn | None = warn_stderr) -> Any:
    """Open `stage` on the first EP of its order that works (in a worker if asked), and report where it ran."""
    if stage in settings.workers:
        from apucodec.runtime.workers.session import open_worker_session

        return open_worker_session(model, stage, settings, expected_input, warn)
    import onnxruntime as ort

    requested, candidates = stage_candidates(model, stage, settings)
    failures: list[tuple[str, str]] = []
    hardware_failed = False
    for cand in candidates:
        availability = probe_ep(cand.ep)
        if not availability.ok:
            failures.append((cand.ep, availability.reason or "unavailable"))
            continue
        log = io.StringIO()
        with work_dir(tempfile.gettempdir(), "apucodec-profile-") as tmp:  # swept after a SIGKILL
            profile_dir = tmp if needs_profiler() else None
            try:
                known = model.has(cand.role)
                session, from_cache = create_session(cand.path, cand.ep, availability, cand.options, settings,
                                                     profile_dir, log,
                                                     model.content_sha256(cand.role) if known else None,
                                                     arena=known and bool(model.files[cand.role].whole_sequence))
                shapes = static_inputs(session, cand.path, whole_dims(model, cand.role))
                check_io(shapes, cand.path, expected_input)
                counts = node_counts(session, shapes, profile_dir)
            except ApucodecError:
                raise
            except Exception as exc:  # onnxruntime's pybind errors have no common base we can name
                failures.append((cand.ep, f"session creation failed: {_first_line(exc)}"))
                hardware_failed = hardware_failed or cand.ep != CPU
                continue
        if cand.ep != CPU and counts and counts.get(cand.ep, 0) == 0:
            failures.append((cand.ep, "it took none of the graph's nodes"))
            hardware_failed = True
            continue
        placement = StagePlacement(stage, requested, cand.ep, graph=cand.path.name, graph_reason=cand.graph_reason,
                                   node_counts=dict(counts.most_common()), options=cand.options,
                                   device=availability.device_label,
                                   node_source="profiled" if profile_dir else
                                   "assigned, cached" if from_cache else "assigned",
                                   runtime={"onnxruntime": ort.__version__, "python": sys.executable,
                                            "process": "in-process"})
        if cand.ep == VITISAI:
            npu = find_counts(cand.options.get("cache_dir"), cand.options.get("cache_key"), log.getvalue())
            placement.npu_ops = npu.to_dict() if npu else None
            if settings.strict:
                check_npu_only(stage, npu)
        if cand.ep != requested:
            placement.fallback_reason = failure_text(failures)
            message = fallback_warning(stage, requested, cand.ep, failures, settings, hardware_failed)
            if message and warn is not None:
                warn(message)
        outputs = [o.name for o in session.get_outputs()]
        record = cand.record or model.files[cand.role]
        return StageSession(session, placement, shapes, outputs, record,
                            run_options=whole_sequence_run_options(bool(record.whole_sequence)))
    text = failure_text(failures)
    if settings.strict:
        raise PlacementError(f"{stage}: {requested} cannot run it ({text}); --strict forbids falling back")
    raise PlacementError(f"{stage}: no execution provider could run it ({text})")


def open_sessions(model: ModelDir, settings: SessionSettings, warn: Warn | None = warn_stderr,
                  stages: Sequence[str] = ("encoder", "decoder"),
                  step_frames: int | None = None) -> tuple[dict[str, Any], PlacementReport]:
    """Sessions for the graph stages a command needs, at one step size (default: each stage's largest, the offline
    step), and the placement report (rvq included)."""
    if step_frames is not None:
        settings = dataclasses.replace(settings, step_frames=step_frames)
    sessions: dict[str, Any] = {}
    try:
        for stage in stages:
            role = step_role(stage, step_frames_for(model, stage, settings))
            sessions[stage] = open_stage_session(model, stage, settings, manifest_inputs(model, role), warn)
    except BaseException:
        for opened in sessions.values():
            opened.close()
        raise
    placements = []
    if "encoder" in sessions:
        placements.append(sessions["encoder"].placement)
    placements.append(rvq_placement(model))
    if "decoder" in sessions:
        placements.append(sessions["decoder"].placement)
    return sessions, PlacementReport(placements)
