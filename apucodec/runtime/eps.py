"""Execution-provider names, the CLI's spellings of them, each stage's preference order, and probing.

An EP is tried only when this machine can actually run it: built into the installed onnxruntime, or a plugin with
a device. `probe_ep` answers that without creating a session and says why not, so the placement report and
`doctor` can name the missing piece ("not in this onnxruntime build (it comes with AMD's Ryzen AI software)").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apucodec.errors import ApucodecError
from apucodec.runtime.webgpu import EP_NAME as WEBGPU_EP_NAME

CPU = "CPUExecutionProvider"
VITISAI = "VitisAIExecutionProvider"
WEBGPU = WEBGPU_EP_NAME  # a plugin EP: its module owns the name, the probe and the registration
MIGRAPHX = "MIGraphXExecutionProvider"
CUDA = "CUDAExecutionProvider"
DIRECTML = "DmlExecutionProvider"

STAGE_PREFERENCES: dict[str, tuple[str, ...]] = {
    "encoder": (VITISAI, CPU),
    "decoder": (WEBGPU, MIGRAPHX, CUDA, DIRECTML, CPU),
}
EP_ALIASES = {"vitisai": VITISAI, "npu": VITISAI, "cpu": CPU, "webgpu": WEBGPU, "migraphx": MIGRAPHX,
              "cuda": CUDA, "dml": DIRECTML, "directml": DIRECTML}
# Where an EP that is not in this onnxruntime build comes from, for the "why not" line.
INSTALL_HINTS = {VITISAI: " (it comes with AMD's Ryzen AI software: onnxruntime-vitisai)",
                 MIGRAPHX: " (onnxruntime-migraphx, ROCm)", CUDA: " (onnxruntime-gpu)",
                 DIRECTML: " (onnxruntime-directml, Windows)"}
NOT_IN_BUILD = "not in this onnxruntime build"

Warn = Callable[[str], None]


def warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def short_ep(name: str) -> str:
    return name.removesuffix("ExecutionProvider") if name.endswith("ExecutionProvider") else name


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


def same_ep(key: str, ep: str) -> bool:
    try:
        return resolve_ep_name(key) == ep
    except ApucodecError:
        return False


@dataclass
class EpAvailability:
    ok: bool
    reason: str | None = None
    device: Any = None        # an OrtEpDevice for plugin EPs (add_provider_for_devices)
    device_label: str | None = None


def _ort():
    import onnxruntime as ort

    return ort


def probe_ep(ep: str) -> EpAvailability:
    """Can this machine create a session on `ep`? Never raises; says why not."""
    ort = _ort()
    if ep == CPU:
        return EpAvailability(True)
    if ep == WEBGPU:
        from apucodec.runtime.webgpu import find_webgpu_devices

        probe = find_webgpu_devices()
        if not probe.available:
            return EpAvailability(False, probe.reason)
        return EpAvailability(True, device=probe.device, device_label=probe.describe())
    if ep in ort.get_available_providers():
        return EpAvailability(True)
    devices = [d for d in ort.get_ep_devices() if d.ep_name == ep] if hasattr(ort, "get_ep_devices") else []
    if devices:
        return EpAvailability(True, device=devices[0], device_label=f"{devices[0].ep_vendor} {ep}")
    return EpAvailability(False, f"{NOT_IN_BUILD}{INSTALL_HINTS.get(ep, '')}")
