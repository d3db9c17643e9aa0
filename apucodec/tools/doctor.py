"""What this machine can run, and where each stage of a model would go: the facts behind `apucodec doctor`.

A user whose decoder lands on the CPU instead of the GPU needs to see, in one place, which onnxruntime build and
execution providers are installed, whether the WebGPU plugin found a Vulkan adapter (and if not, why), whether an
NPU and the Vitis AI EP are present, and what the runtime would actually do with their model. The per-stage plan
reuses the runtime's EP probing and sessions (apucodec.runtime.eps, .sessions), so doctor never disagrees with
`run`; with a model directory it opens the real sessions, so the node counts are onnxruntime's own
assignment, not a guess.

Torch-free: package versions come from importlib.metadata, never from importing the packages.
"""

from __future__ import annotations

import glob
import importlib.metadata
import platform
import shutil
import subprocess
import sys
from typing import Any

from apucodec import __version__
from apucodec.errors import ApucodecError
from apucodec.model.directory import ModelDir, load_model_dir
from apucodec.model.location import ModelLocation

# Distributions worth naming: the runtime's own, the onnxruntime variants that carry other EPs, and the toolchain.
PACKAGES = ("onnxruntime", "onnxruntime-ep-webgpu", "onnxruntime-vitisai", "onnxruntime-gpu", "onnxruntime-directml",
            "onnxruntime-migraphx", "onnxruntime-rocm", "numpy", "soundfile", "soxr", "torch", "onnx", "onnxsim",
            "amd-quark", "matplotlib")
XRT_SMI_CANDIDATES = ("xrt-smi", "/opt/xilinx/xrt/bin/xrt-smi")
XRT_TIMEOUT_S = 15


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def onnxruntime_info() -> dict[str, Any]:
    """onnxruntime's version, built-in EPs, and EP devices (plugin EPs included, after WebGPU registration)."""
    import onnxruntime as ort

    from apucodec.runtime.webgpu import register_webgpu_plugin

    register_webgpu_plugin()  # so the WebGPU plugin's devices are listed too
    devices = []
    for device in ort.get_ep_devices() if hasattr(ort, "get_ep_devices") else []:
        hw = device.device
        devices.append({"ep": device.ep_name, "vendor": device.ep_vendor, "hardware": str(hw.type).rsplit(".", 1)[-1],
                        "hardware_vendor": hw.vendor, "vendor_id": int(hw.vendor_id),
                        "device_id": int(hw.device_id)})
    return {"version": ort.__version__, "available_providers": list(ort.get_available_providers()),
            "ep_devices": devices}


def npu_info(available_providers: list[str], ep_devices: list[dict[str, Any]]) -> dict[str, Any]:
    """NPU device nodes (amdxdna driver), xrt-smi's view of them, and whether the Vitis AI EP can be used."""
    from apucodec.runtime.eps import VITISAI

    nodes = sorted(glob.glob("/dev/accel/accel*"))
    xrt_smi = next((found for c in XRT_SMI_CANDIDATES if (found := shutil.which(c))), None)
    xrt_output = None
    if xrt_smi:
        try:
            done = subprocess.run([xrt_smi, "examine"], capture_output=True, text=True, timeout=XRT_TIMEOUT_S)
            xrt_output = (done.stdout + done.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            xrt_output = f"xrt-smi examine failed: {exc}"
    vitisai = VITISAI in available_providers or any(d["ep"] == VITISAI for d in ep_devices)
    return {"device_nodes": nodes, "xrt_smi": xrt_smi, "xrt_smi_examine": xrt_output, "vitisai_ep": vitisai}


def stage_plan_without_model() -> dict[str, list[dict[str, Any]]]:
    """Per stage, every EP in preference order with whether it can run here and why not."""
    from apucodec.runtime.eps import STAGE_PREFERENCES, probe_ep

    plan: dict[str, list[dict[str, Any]]] = {}
    for stage, order in STAGE_PREFERENCES.items():
        plan[stage] = []
        for ep in order:
            availability = probe_ep(ep)
            plan[stage].append({"ep": ep, "available": availability.ok, "reason": availability.reason,
                                "device": availability.device_label})
    return plan


def model_plan(model: ModelDir) -> dict[str, Any]:
    """Open the model's sessions the way `run` would and return its placement report (real node assignment)."""
    from apucodec.runtime.sessions import open_sessions
    from apucodec.runtime.stage_plan import SessionSettings

    warnings: list[str] = []
    try:
        _, report = open_sessions(model, SessionSettings(), warn=warnings.append)
    except ApucodecError as exc:
        return {"path": str(model.path), "model_id": model.model_id, "error": str(exc), "warnings": warnings}
    from apucodec.runtime.segmented_stages import approximation_line

    approximate = approximation_line(model)  # a GroupNorm model: offline exact, streaming approximate
    return {"path": str(model.path), "model_id": model.model_id, "placement": report.to_dict(),
            "placement_text": report.format(), "warnings": warnings + ([approximate] if approximate else [])}


def collect(location: ModelLocation | None, workers: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything doctor reports, as plain data (the --json output)."""
    from apucodec.runtime.webgpu import find_webgpu_devices
    from apucodec.tools.gpu_report import webgpu_facts

    # A bad model directory is the user's input error: report it first, before onnxruntime and the plugin log
    # anything, so it stays the single line the CLI prints. Without --model (or $APUCODEC_MODEL) the default
    # directory is looked at only if it is there.
    model = None
    if location is not None and (location.explicit or location.path.exists()):
        model = load_model_dir(location.path)
    ort_info = onnxruntime_info()
    report: dict[str, Any] = {
        "apucodec": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "onnxruntime": ort_info,
        "webgpu": webgpu_facts(find_webgpu_devices()),
        "npu": npu_info(ort_info["available_providers"], ort_info["ep_devices"]),
        "stages": stage_plan_without_model(),
        "model": None,
    }
    if model is not None:
        report["model"] = model_plan(model)
    from apucodec.tools.doctor_npu import op_checks, vitisai_plan, worker_plan

    report["vitisai"] = vitisai_plan(model, report["npu"]["xrt_smi_examine"])
    report["op_checks"] = op_checks(model)
    report["workers"] = worker_plan(model, workers)
    return report


def format_text(report: dict[str, Any]) -> str:
    """The human-readable report: one fact per line, reasons next to every "no"."""
    from apucodec.runtime.eps import short_ep
    from apucodec.tools.gpu_report import webgpu_lines

    lines = [f"apucodec {report['apucodec']} | python {report['python']} | {report['platform']}"]
    ort_info = report["onnxruntime"]
    lines.append(f"onnxruntime {ort_info['version']}: execution providers {', '.join(ort_info['available_providers'])}")
    lines.append("EP devices:")
    for d in ort_info["ep_devices"]:
        lines.append(f"  {d['ep']} ({d['vendor']}) on {d['hardware']} {d['hardware_vendor']} "
                     f"[{d['vendor_id']:#06x}:{d['device_id']:#06x}]")
    lines.extend(webgpu_lines(report["webgpu"]))
    npu = report["npu"]
    nodes = ", ".join(npu["device_nodes"]) or "none (/dev/accel/accel* absent: no NPU or no amdxdna driver)"
    lines.append(f"NPU: device nodes {nodes}; xrt-smi {npu['xrt_smi'] or 'not installed'}; "
                 f"Vitis AI EP {'available' if npu['vitisai_ep'] else 'not available'}")
    if npu["xrt_smi_examine"]:
        lines.extend(f"  | {line}" for line in npu["xrt_smi_examine"].splitlines()[:12])
    versions = report["packages"]
    lines.append("packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append("stage preferences (first available wins):")
    for stage, entries in report["stages"].items():
        chosen = next((e["ep"] for e in entries if e["available"]), None)
        lines.append(f"  {stage}: would use {short_ep(chosen) if chosen else 'nothing'}")
        for entry in entries:
            mark = "yes" if entry["available"] else "no "
            why = entry["device"] if entry["available"] and entry["device"] else entry["reason"] or ""
            lines.append(f"    [{mark}] {short_ep(entry['ep']):10s} {why}".rstrip())
    lines.append("  rvq: NumPy on the CPU, always")
    model = report["model"]
    if model is None:
        lines.append("model: none given (--model DIR or $APUCODEC_MODEL) and ./apucodec-model absent")
    elif "error" in model:
        lines.append(f"model {model['path']} ({model['model_id']}): cannot open its sessions: {model['error']}")
    else:
        lines.append(f"model {model['path']} ({model['model_id']}):")
        lines.extend(f"  {line}" for line in model["placement_text"].splitlines())
        lines.extend(f"  warning: {w}" for w in model["warnings"])
    from apucodec.tools.doctor_npu import format_lines

    lines.extend(format_lines(report))
    return "\n".join(lines)
