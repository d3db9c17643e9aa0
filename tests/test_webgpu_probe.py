"""The WebGPU probe's decisions: which adapter it reports, and the one-line reason when there is none.

The decision logic is tested with stand-in ONNX Runtime devices and Vulkan reports, so every case (no loader, no
driver, software only, GPU without a Vulkan driver, a real GPU) is covered on any machine; one test asks the real
Vulkan loader in a child process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from apucodec.runtime import webgpu
from apucodec.runtime.vulkan import VulkanDevice, VulkanReport, probe_vulkan
from apucodec.runtime.webgpu import ALLOW_SOFTWARE_ENV, normalize_options
from apucodec.tools.gpu_report import webgpu_facts

LLVMPIPE = VulkanDevice("llvmpipe (LLVM 15.0.6, 256 bits)", "cpu", 0x10005, 0, "1.4.305", "llvmpipe",
                        "Mesa 25.0.7")
OLD_LLVMPIPE = VulkanDevice("llvmpipe (LLVM 15.0.6, 256 bits)", "cpu", 0x10005, 0, "1.3.230", "llvmpipe",
                            "Mesa 22.3.6")
RADV = VulkanDevice("AMD Radeon 780M (RADV GFX1103_R1)", "integrated-gpu", 0x1002, 0x15BF, "1.4.305", "radv",
                    "Mesa 25.0.7")


def _ep_device(kind: str, vendor_id: int = 0x1002, device_id: int = 0x15BF) -> SimpleNamespace:
    """Stands in for onnxruntime.OrtEpDevice: the attributes the probe reads."""
    hw = SimpleNamespace(type=f"OrtHardwareDeviceType.{kind}", vendor="AMD", vendor_id=vendor_id,
                         device_id=device_id, metadata={})
    return SimpleNamespace(ep_name=webgpu.EP_NAME, ep_vendor="Microsoft", ep_metadata={}, device=hw)


@pytest.fixture
def fake_machine(monkeypatch):
    """Set what the plugin offers and what Vulkan lists; returns a function running the probe on that."""
    monkeypatch.setattr(webgpu.sys, "platform", "linux")

    def probe(devices: list, vulkan: VulkanReport, allow_software: bool = False) -> webgpu.WebGpuProbe:
        monkeypatch.setattr(webgpu, "register_webgpu_plugin", lambda: ("/x/libonnxruntime_providers_webgpu.so", None))
        monkeypatch.setattr(webgpu, "_ep_devices", lambda: devices)
        monkeypatch.setattr(webgpu, "probe_vulkan", lambda: vulkan)
        if allow_software:
            monkeypatch.setenv(ALLOW_SOFTWARE_ENV, "1")
        else:
            monkeypatch.delenv(ALLOW_SOFTWARE_ENV, raising=False)
        return webgpu._probe()

    return probe


def test_real_gpu_with_radv_is_used(fake_machine):
    probe = fake_machine([_ep_device("GPU")], VulkanReport("libvulkan.so.1", devices=(LLVMPIPE, RADV)))
    assert probe.available and probe.reason is None
    assert probe.adapter == RADV and not probe.software_adapter and probe.notes == ()
    assert probe.describe().startswith("WebGPU via Vulkan: AMD Radeon 780M")
    assert webgpu_facts(probe)["ep_device"]["hardware"]["vendor_id"] == 0x1002


def test_gpu_without_vulkan_driver_is_refused(fake_machine):
    """An APU whose Vulkan driver is missing: Dawn could only use lavapipe, 20-40x slower than the CPU EP."""
    probe = fake_machine([_ep_device("GPU")], VulkanReport("libvulkan.so.1", devices=(LLVMPIPE,)))
    assert not probe.available and probe.device is None
    assert "0x1002:0x15bf" in probe.reason and "no Vulkan driver" in probe.reason and "llvmpipe" in probe.reason


def test_software_adapter_only_when_allowed(fake_machine):
    probe = fake_machine([_ep_device("CPU", 0x8086, 0)], VulkanReport("libvulkan.so.1", devices=(LLVMPIPE,)),
                         allow_software=True)
    assert probe.available and probe.software_adapter and probe.adapter == LLVMPIPE
    assert "software adapter, for tests only" in probe.describe()
    assert any(ALLOW_SOFTWARE_ENV in note for note in probe.notes)


def test_old_mesa_lavapipe_gets_a_note(fake_machine):
    probe = fake_machine([_ep_device("CPU", 0x8086, 0)], VulkanReport("libvulkan.so.1", devices=(OLD_LLVMPIPE,)),
                         allow_software=True)
    assert any("Mesa before 25" in note for note in probe.notes)


def test_no_device_software_only_names_the_switch(fake_machine):
    probe = fake_machine([], VulkanReport("libvulkan.so.1", devices=(LLVMPIPE,)))
    assert not probe.available and f"{ALLOW_SOFTWARE_ENV}=1" in probe.reason


def test_device_offered_but_no_vulkan_driver_is_refused(fake_machine):
    """The plugin may offer a device although Vulkan has no driver: every session would fail, so say why now."""
    probe = fake_machine([_ep_device("CPU", 0x8086, 0)], VulkanReport("libvulkan.so.1", devices=()),
                         allow_software=True)
    assert not probe.available and "no Vulkan driver" in probe.reason


def test_plugin_missing_says_which_extra(monkeypatch):
    monkeypatch.setattr(webgpu.importlib.util, "find_spec", lambda name: None)
    path, error = webgpu._register()
    assert path is None and "pip install 'apucodec[webgpu]'" in error


# --- the reason text, one cause at a time ---------------------------------------------------------------------

def test_reason_no_loader(fake_machine):
    report = VulkanReport(None, error="no Vulkan loader (libvulkan.so.1) found; install it")
    assert "libvulkan" in fake_machine([], report).reason


def test_reason_no_driver(fake_machine):
    assert "no Vulkan driver" in fake_machine([], VulkanReport("libvulkan.so.1", devices=())).reason


def test_reason_software_only_names_the_switch(fake_machine):
    reason = fake_machine([], VulkanReport("libvulkan.so.1", devices=(LLVMPIPE,))).reason
    assert "software" in reason and f"{ALLOW_SOFTWARE_ENV}=1" in reason and "llvmpipe" in reason
    allowed = fake_machine([], VulkanReport("libvulkan.so.1", devices=(LLVMPIPE,)), allow_software=True)
    assert f"{ALLOW_SOFTWARE_ENV}=1" not in allowed.reason


def test_reason_hardware_present_but_no_device(fake_machine):
    reason = fake_machine([], VulkanReport("libvulkan.so.1", devices=(RADV, LLVMPIPE))).reason
    assert "RADV" in reason and "offered no device" in reason


def test_options_are_unprefixed_strings():
    assert normalize_options({"ep.webgpuexecutionprovider.preferredLayout": "NCHW", "enableGraphCapture": False,
                              "maxNumPendingDispatches": 16}) == {
        "preferredLayout": "NCHW", "enableGraphCapture": "false", "maxNumPendingDispatches": "16"}


def test_probe_says_no_driver_when_vulkan_has_none():
    """With the loader pointed at a driver file that does not exist, the probe must blame the driver, not report
    an adapter that every session would then fail on ("Failed to get a WebGPU adapter")."""
    pytest.importorskip("onnxruntime_ep_webgpu")
    code = ("import json; from apucodec.runtime.webgpu import find_webgpu_devices\n"
            "from apucodec.tools.gpu_report import webgpu_facts\n"
            "print(json.dumps(webgpu_facts(find_webgpu_devices())))\n")
    env = {**os.environ, "VK_DRIVER_FILES": "/nonexistent/icd.json", ALLOW_SOFTWARE_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    if probe["vulkan"] is None or probe["vulkan"]["loader"] is None:
        pytest.skip(f"no Vulkan loader on this machine: {probe['reason']}")
    assert probe["available"] is False
    assert "no Vulkan driver" in probe["reason"]
    assert probe["vulkan"]["driver_env"] == {"VK_DRIVER_FILES": "/nonexistent/icd.json"}


def test_vulkan_probe_reads_the_real_loader():
    """The ctypes struct reading against the machine's own Vulkan loader (and vulkaninfo, where installed)."""
    report = probe_vulkan()
    if report.loader is None:
        pytest.skip(report.error)
    assert report.error is None or "Vulkan" in report.error or "VkResult" in report.error
    for device in report.devices:
        assert device.name and device.device_type in {"integrated-gpu", "discrete-gpu", "virtual-gpu", "cpu", "other"}
        assert re.fullmatch(r"1\.\d+\.\d+", device.api_version), device
    vulkaninfo = shutil.which("vulkaninfo")
    if vulkaninfo and report.devices:
        done = subprocess.run([vulkaninfo, "--summary"], capture_output=True, text=True, timeout=60)
        names = re.findall(r"deviceName\s*=\s*(.+)", done.stdout)
        assert sorted(n.strip() for n in names) == sorted(d.name for d in report.devices)
