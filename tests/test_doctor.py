"""`apucodec doctor`: exits 0, reports what the runtime would do, stays torch-free, and explains missing adapters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.runtime.providers import STAGE_PREFERENCES, WEBGPU
from apucodec.runtime.vulkan import VulkanDevice, VulkanReport
from apucodec.runtime.webgpu import ALLOW_SOFTWARE_ENV, _no_device_reason, normalize_options

LLVMPIPE = VulkanDevice("llvmpipe (LLVM 15.0.6, 256 bits)", "cpu", 0x10005, 0, "1.4.305", "llvmpipe",
                        "Mesa 25.0.7")
RADV = VulkanDevice("AMD Radeon 780M (RADV GFX1103_R1)", "integrated-gpu", 0x1002, 0x15BF, "1.4.305", "radv",
                    "Mesa 25.0.7")


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Doctor in a fresh process: the WebGPU plugin reads its environment once per process, at registration."""
    command = [sys.executable, "-c", "from apucodec.cli.main import main; main()", "doctor", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def doctor_json() -> dict:
    done = _doctor("--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_doctor_text_exits_zero_and_names_every_section():
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    import onnxruntime as ort

    out = result.output
    assert f"onnxruntime {ort.__version__}" in out
    for section in ("WebGPU", "NPU:", "stage preferences", "encoder: would use", "decoder: would use", "rvq: NumPy"):
        assert section in out, section


def test_doctor_json_plan_follows_the_runtime_preferences(doctor_json):
    report = doctor_json
    for stage, order in STAGE_PREFERENCES.items():
        assert [entry["ep"] for entry in report["stages"][stage]] == list(order)
        # every EP that cannot run says why
        assert all(entry["reason"] for entry in report["stages"][stage] if not entry["available"])
    # the CPU always can, so every stage has a fallback
    assert all(any(e["available"] for e in entries) for entries in report["stages"].values())
    webgpu = report["webgpu"]
    decoder_webgpu = next(e for e in report["stages"]["decoder"] if e["ep"] == WEBGPU)
    assert decoder_webgpu["available"] == webgpu["available"]
    if not webgpu["available"]:
        assert webgpu["reason"] and decoder_webgpu["reason"] == webgpu["reason"]
    assert report["packages"]["onnxruntime"] == report["onnxruntime"]["version"]
    assert isinstance(report["npu"]["device_nodes"], list) and isinstance(report["npu"]["vitisai_ep"], bool)


def test_doctor_does_not_import_torch():
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from apucodec.cli.main import cli\n"
            "r = CliRunner().invoke(cli, ['doctor', '--json'])\n"
            "assert r.exit_code == 0, r.output\n"
            "heavy = sorted(m for m in ('torch', 'onnx', 'quark') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_doctor_missing_model_dir_is_one_line_error(tmp_path):
    missing = tmp_path / "nope"
    done = _doctor("--model", str(missing))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {missing}: no such model directory (run 'apucodec export' "
                                                 "first, or pass --model)"]
    assert "Traceback" not in done.stderr


def test_doctor_plans_a_model_dir_with_real_sessions(tiny_model_dir):
    done = _doctor("--model", str(tiny_model_dir), "--json")
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)["model"]
    assert "error" not in model, model
    placement = model["placement"]
    assert set(placement) == {"encoder", "rvq", "decoder"}
    for stage in ("encoder", "decoder"):
        ran_on = placement[stage]["ran_on"]
        # onnxruntime's own assignment: the EP the stage landed on took nodes
        assert placement[stage]["node_counts"].get(ran_on, 0) > 0, placement[stage]
    text = _doctor("--model", str(tiny_model_dir))
    assert text.returncode == 0 and "placement:" in text.stdout


# --- why there is no adapter: each cause gets its own explanation -------------------------------------------------

def test_reason_no_loader():
    report = VulkanReport(None, error="no Vulkan loader (libvulkan.so.1) found; install it")
    assert "libvulkan" in _no_device_reason(report)


def test_reason_no_driver():
    assert "no Vulkan driver" in _no_device_reason(VulkanReport("libvulkan.so.1", devices=()))


def test_reason_software_only_names_the_switch(monkeypatch):
    monkeypatch.delenv(ALLOW_SOFTWARE_ENV, raising=False)
    reason = _no_device_reason(VulkanReport("libvulkan.so.1", devices=(LLVMPIPE,)))
    assert "software" in reason and f"{ALLOW_SOFTWARE_ENV}=1" in reason and "llvmpipe" in reason
    monkeypatch.setenv(ALLOW_SOFTWARE_ENV, "1")
    assert f"{ALLOW_SOFTWARE_ENV}=1" not in _no_device_reason(VulkanReport("libvulkan.so.1", devices=(LLVMPIPE,)))


def test_reason_hardware_present_but_no_device():
    reason = _no_device_reason(VulkanReport("libvulkan.so.1", devices=(RADV, LLVMPIPE)))
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
            "print(json.dumps(find_webgpu_devices().to_dict()))\n")
    env = {**os.environ, "VK_DRIVER_FILES": "/nonexistent/icd.json", ALLOW_SOFTWARE_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    if probe["vulkan"] is None or probe["vulkan"]["loader"] is None:
        pytest.skip(f"no Vulkan loader on this machine: {probe['reason']}")
    assert probe["available"] is False
    assert "no Vulkan driver" in probe["reason"]
    assert probe["vulkan"]["driver_env"] == {"VK_DRIVER_FILES": "/nonexistent/icd.json"}
