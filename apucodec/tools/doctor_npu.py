"""The NPU and worker parts of `apucodec doctor`: the exact Vitis AI options a run would pass, the INT8 and BF16
operator checks of a model's encoder (and decoder), and the stage-worker plan with each worker's onnxruntime.

Kept out of doctor.py so that one stays about this machine's EPs; this one is about what a run would do on an NPU.
The op checks read op types from ONNX Runtime's node record, so doctor needs neither onnx nor torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from apucodec.errors import first_line
from apucodec.model.directory import ModelDir

WORKER_PROBE_TIMEOUT_S = 30
_PROBE = ("import json, sys, numpy, onnxruntime as o; print(json.dumps({'onnxruntime': o.__version__, "
          "'numpy': numpy.__version__, 'python_version': sys.version.split()[0], "
          "'available_providers': o.get_available_providers()}))")


def vitisai_plan(model: ModelDir | None, xrt_output: str | None) -> dict[str, Any]:
    """NPU generation and, per graph a run could put on the Vitis AI EP, the exact provider options."""
    from apucodec.runtime.eps import VITISAI
    from apucodec.runtime.stage_plan import SessionSettings, stage_candidates
    from apucodec.runtime.vitisai import detect_npu, xlnx_environment

    npu = detect_npu(xrt_output=xrt_output)
    plan: dict[str, Any] = {"npu_generation": npu.to_dict() if npu else None, "xlnx_env_ignored": xlnx_environment(),
                            "graphs": {}}
    if model is None:
        return plan
    for precision in ("auto", "bf16"):
        settings = SessionSettings(encoder_graph=precision, decoder_eps=(VITISAI,))
        for stage in ("encoder", "decoder"):
            for cand in stage_candidates(model, stage, settings)[1]:
                if cand.ep == VITISAI:
                    plan["graphs"].setdefault(cand.path.name, {"stage": stage, "options": cand.options,
                                                               "notes": cand.notes})
    return plan


def graph_op_types(path: Path) -> Counter:
    """Op types of a graph as written (no fusion), from ONNX Runtime's node record: doctor stays onnx-free."""
    import onnxruntime as ort

    from apucodec.contract.npu_ops import op_counts
    from apucodec.runtime.eps import CPU
    from apucodec.runtime.ort_options import session_options
    from apucodec.runtime.stage_plan import SessionSettings

    if not hasattr(ort.InferenceSession, "get_provider_graph_assignment_info"):
        raise RuntimeError(f"onnxruntime {ort.__version__} has no node record (needs >= 1.24)")
    so = session_options(SessionSettings(spin=True))  # the runtime's options, records node placement
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), so, providers=[CPU])
    return op_counts(node for sub in session.get_provider_graph_assignment_info() for node in sub.get_nodes())


def op_checks(model: ModelDir | None) -> dict[str, Any]:
    """Each graph the NPU would get, against the list of the precision it runs in there: every NPU INT8 encoder
    graph against its preset's INT8 lists, and an FP32 encoder graph with no INT8 graph at its step size (the
    Vitis AI EP compiles that one to BF16) against the BF16 list. The decoder's graphs are for the GPU and the
    CPU INT8 graphs for the CPU, where no op list applies; `placement` reports where they ran."""
    if model is None:
        return {}
    from apucodec.contract.npu_ops import bf16_check_counts, int8_check_counts

    checks: dict[str, Any] = {}
    try:
        encoder = model.step_graphs("encoder")
        int8 = [g for g in encoder if g.precision == "npu-int8"]
        checks["int8"] = {g.name: int8_check_counts(graph_op_types(model.path / g.name), g.preset).to_dict()
                          for g in int8}
        covered = {g.step_frames for g in int8}
        bf16 = [g for g in encoder if g.precision == "fp32" and g.step_frames not in covered]
        checks["bf16"] = {g.name: bf16_check_counts(graph_op_types(model.path / g.name)).to_dict() for g in bf16}
    except Exception as exc:  # an unreadable graph is reported by the model plan; here it only ends the checks
        checks["error"] = f"op checks stopped: {first_line(exc)}"
    return checks


def probe_worker_python(python: str) -> dict[str, Any]:
    """The onnxruntime, numpy and EPs a worker interpreter would bring (never raises)."""
    exe = sys.executable if python == "self" else python
    try:
        done = subprocess.run([exe, "-E", "-c", _PROBE], capture_output=True, text=True,
                              timeout=WORKER_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"python": exe, "error": str(exc)}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"python": exe, "error": last}
    return {"python": exe, **json.loads(done.stdout)}


def worker_plan(model: ModelDir | None, cli_workers: dict[str, str] | None = None) -> dict[str, Any]:
    """Stage -> interpreter (CLI, environment, user config) with what each would run; empty: all in this process."""
    from apucodec.runtime.workers.plan import resolve_workers

    workers = resolve_workers(cli_workers or {}, model.manifest if model else None)
    return {stage: probe_worker_python(python) for stage, python in workers.items()}


def format_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    vitis = report.get("vitisai") or {}
    npu = vitis.get("npu_generation")
    lines.append("NPU generation: " + (f"{npu['architecture']} {npu['family']} ({npu['device_id']}, from "
                                       f"{npu['source']}): Vitis AI target {npu['target']}" if npu else "unknown"))
    for name, value in (vitis.get("xlnx_env_ignored") or {}).items():
        lines.append(f"  note: {name}={value} is set; Vitis AI EP 1.6+ ignores XLNX_* variables")
    for graph, entry in (vitis.get("graphs") or {}).items():
        options = ", ".join(f"{k}={v}" for k, v in entry["options"].items())
        lines.append(f"  Vitis AI options for {graph}: {options}")
    for kind, graphs in (report.get("op_checks") or {}).items():
        if kind == "error":
            lines.append(f"op checks: {graphs}")
            continue
        for graph, check in graphs.items():
            missing = ", ".join(check["not_listed"]) or "none"
            lines.append(f"{kind.upper()} op check {graph}: {'ready' if check['ready'] else 'not ready'} "
                         f"(ops outside the list: {missing})")
    workers = report.get("workers") or {}
    if not workers:
        lines.append("workers: none (every stage in this process)")
    for stage, info in workers.items():
        what = info.get("error") or (f"onnxruntime {info['onnxruntime']}, numpy {info['numpy']}, EPs "
                                     f"{', '.join(info['available_providers'])}")
        lines.append(f"worker {stage}: {info['python']}: {what}")
    return lines
