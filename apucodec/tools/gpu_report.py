"""The WebGPU/Vulkan part of `apucodec doctor`: the adapter probe as plain data (--json) and as text lines.

apucodec.runtime.webgpu and apucodec.runtime.vulkan decide whether the decoder can run on a GPU (the runtime needs
that answer to create sessions); this module only reports what they found, so a user whose decoder landed on the
CPU can see which of the usual causes applies: plugin missing, no Vulkan loader, no driver, only a software
rasterizer.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from apucodec.runtime.vulkan import VulkanReport
from apucodec.runtime.webgpu import ALLOW_SOFTWARE_ENV, WebGpuProbe, software_allowed


def vulkan_facts(report: VulkanReport) -> dict[str, Any]:
    """What the Vulkan loader found, device by device, with the driver-selection variables in effect."""
    return {"loader": report.loader, "error": report.error, "driver_env": dict(report.driver_env),
            "devices": [{**asdict(d), "vendor": d.vendor, "software": d.is_software} for d in report.devices]}


def webgpu_facts(probe: WebGpuProbe) -> dict[str, Any]:
    """The WebGPU probe as JSON-ready data: availability, the reason when not, the EP device and the adapter."""
    device = probe.device
    return {
        "available": probe.available,
        "reason": probe.reason,
        "description": probe.describe(),
        "plugin_version": probe.plugin_version,
        "library_path": probe.library_path,
        "backend": probe.backend,
        "ep_device": ({"ep_name": device.ep_name, "ep_vendor": device.ep_vendor,
                       "ep_metadata": dict(device.ep_metadata), "hardware": probe.hardware}
                      if device is not None else None),
        "adapter": probe.adapter.describe() if probe.adapter else None,
        "software_adapter": probe.software_adapter,
        "software_allowed": software_allowed(),
        "vulkan": vulkan_facts(probe.vulkan) if probe.vulkan else None,
        "notes": list(probe.notes),
    }


def webgpu_lines(webgpu: dict[str, Any]) -> list[str]:
    """doctor's text for `webgpu_facts`: the adapter, notes, Vulkan devices and whether software ones count."""
    plugin = f"plugin {webgpu['plugin_version']}" if webgpu["plugin_version"] else "plugin not installed"
    lines = [f"WebGPU ({plugin}): {webgpu['description']}"]
    for note in webgpu["notes"]:
        lines.append(f"  note: {note}")
    vulkan = webgpu.get("vulkan")
    if vulkan:
        if vulkan["error"]:
            lines.append(f"  Vulkan: {vulkan['error']}")
        for dev in vulkan["devices"]:
            lines.append(f"  Vulkan device: {dev['name']} [{dev['device_type']}, {dev['vendor']}, "
                         f"Vulkan {dev['api_version']}, {dev['driver_info'] or dev['driver_name']}]")
        for key, value in vulkan["driver_env"].items():
            lines.append(f"  {key}={value}")
    state = "=1: software adapters allowed (tests/CI)" if webgpu["software_allowed"] else \
        " unset: software adapters ignored"
    lines.append(f"  {ALLOW_SOFTWARE_ENV}{state}")
    return lines
