"""Is the processor a stage prefers physically there? Read from sysfs, in microseconds, without opening anything.

A fallback to the CPU is news only when it is a surprise. On a PC without an NPU or an AMD GPU every default run
falls back, and a warning on every command would be noise (the summary line says where each stage ran). But on a
Ryzen AI machine whose NPU is there while the Vitis AI EP is not installed, or whose Radeon iGPU is there while the
WebGPU plugin or the Vulkan driver is missing, the CPU fallback is exactly what the user needs to hear about: one
warning line per stage (runtime/stage_plan.fallback_warning).

Linux only (sysfs); elsewhere nothing is reported present, and the other reasons for a warning still apply.
"""

from __future__ import annotations

import functools
import glob
from pathlib import Path

from apucodec.runtime.eps import CUDA, MIGRAPHX, VITISAI, WEBGPU

AMD_CPU_VENDOR, AMD_GPU_VENDOR, NVIDIA_VENDOR = 0x1022, 0x1002, 0x10DE
NPU_DEVICE_IDS = {0x1502: "XDNA NPU (Phoenix / Hawk Point)", 0x17F0: "XDNA 2 NPU (Strix / Krackan)"}
DISPLAY_CLASS = 0x03  # PCI base class of display controllers


def _hex(path: Path) -> int | None:
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def _pci_devices(root: str) -> list[tuple[int | None, int | None, int | None]]:
    """(vendor, device, class) of every PCI device under sysfs `root`."""
    out = []
    for device in sorted(glob.glob(f"{root}/bus/pci/devices/*")):
        path = Path(device)
        out.append((_hex(path / "vendor"), _hex(path / "device"), _hex(path / "class")))
    return out


@functools.cache
def present(ep: str, root: str = "/sys", dev: str = "/dev") -> str | None:
    """A short description of the processor `ep` would run on when one is installed here, else None."""
    devices = _pci_devices(root)
    if ep == VITISAI:
        for vendor, device, _ in devices:
            if vendor == AMD_CPU_VENDOR and device in NPU_DEVICE_IDS:
                return NPU_DEVICE_IDS[device]
        return "an NPU device node (/dev/accel)" if glob.glob(f"{dev}/accel/accel*") else None
    wanted = {WEBGPU: AMD_GPU_VENDOR, MIGRAPHX: AMD_GPU_VENDOR, CUDA: NVIDIA_VENDOR}.get(ep)
    if wanted is None:
        return None
    for vendor, _, klass in devices:
        if vendor == wanted and klass is not None and klass >> 16 == DISPLAY_CLASS:
            return "an AMD GPU" if wanted == AMD_GPU_VENDOR else "an NVIDIA GPU"
    return None
