"""What a first run prints: a CPU fallback warned about only where the processor is in the machine, no negative
latencies from a stream that is not paced, and a stream's compute time instead."""

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.runtime import processors
from apucodec.runtime.eps import CPU, CUDA, VITISAI, WEBGPU
from apucodec.runtime.stage_plan import SessionSettings, fallback_warning


def _pci(root: Path, slot: str, vendor: int, device: int, klass: int) -> None:
    path = root / "bus" / "pci" / "devices" / slot
    path.mkdir(parents=True)
    for name, value in (("vendor", vendor), ("device", device), ("class", klass)):
        (path / name).write_text(f"0x{value:04x}\n")


def test_processors_are_read_from_sysfs(tmp_path):
    root, dev = tmp_path / "sys", tmp_path / "dev"
    _pci(root, "0000:00:00.0", 0x1022, 0x14E8, 0x060000)       # an AMD host bridge: neither NPU nor GPU
    assert processors.present(VITISAI, str(root), str(dev)) is None
    assert processors.present(WEBGPU, str(root), str(dev)) is None
    _pci(root, "0000:c5:00.1", 0x1022, 0x17F0, 0x118000)       # Strix's NPU
    _pci(root, "0000:c4:00.0", 0x1002, 0x150E, 0x030000)       # a Radeon iGPU
    processors.present.cache_clear()
    assert "Strix" in processors.present(VITISAI, str(root), str(dev))
    assert processors.present(WEBGPU, str(root), str(dev)) == "an AMD GPU"
    assert processors.present(CUDA, str(root), str(dev)) is None
    (dev / "accel").mkdir(parents=True)
    (dev / "accel" / "accel0").touch()
    assert processors.present(VITISAI, str(tmp_path / "empty"), str(dev)) == "an NPU device node (/dev/accel)"
    processors.present.cache_clear()


def test_a_default_fallback_warns_only_where_the_processor_is_present(monkeypatch):
    failures = [(VITISAI, "not in this onnxruntime build")]
    monkeypatch.setattr(processors, "present", lambda ep: None)
    assert fallback_warning("encoder", VITISAI, CPU, failures, SessionSettings(), False) is None
    monkeypatch.setattr(processors, "present", lambda ep: "XDNA 2 NPU (Strix / Krackan)" if ep == VITISAI else None)
    line = fallback_warning("encoder", VITISAI, CPU, failures, SessionSettings(), False)
    assert line == ("encoder: running on CPU, not VitisAI (not in this onnxruntime build; this machine has XDNA 2 "
                    "NPU (Strix / Krackan): see docs/npu-guide.md)")


def test_stream_without_realtime_reports_compute_time_not_latency(runtime_model, tmp_path):
    source = tmp_path / "in.wav"
    sf.write(source, (0.1 * np.sin(np.arange(44100) * 0.05)).astype(np.float32), 44100)
    base = ["stream", str(source), str(tmp_path / "out.wav"), "--model", str(runtime_model), "--encoder-ep", "cpu",
            "--decoder-ep", "cpu"]
    text = CliRunner().invoke(cli, base)
    assert text.exit_code == 0, text.output
    assert "compute per step p50/p95/p99/max" in text.output and "RTF" in text.output
    assert "end-to-end latency p50" not in text.output and "-" not in text.output.split("compute per step")[1][:40]
    report = json.loads(CliRunner().invoke(cli, [*base, "--json"]).stdout)
    assert report["realtime"] is False and report["latency_ms"] is None and report["deadline_misses"] is None
    assert report["compute_ms"]["p50"] > 0
