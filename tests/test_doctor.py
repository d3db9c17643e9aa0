"""`apucodec doctor`: exits 0, reports what the runtime would do, stays torch-free, and explains missing adapters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.runtime.eps import STAGE_PREFERENCES, WEBGPU
from tests.cli_helpers import cli_modules_loaded


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
    done, loaded = cli_modules_loaded("doctor", "--json")
    assert done.returncode == 0, done.stderr
    assert loaded == []


def test_doctor_missing_model_dir_is_one_line_error(tmp_path):
    missing = tmp_path / "nope"
    # with the software adapter allowed (as in CI) onnxruntime logs a notice when the plugin registers: the error
    # must come first and alone
    done = _doctor("--model", str(missing), env={"ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "1"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {missing}: no such model directory (run 'apucodec export' "
                                                 "first, or pass --model)"]
    assert "Traceback" not in done.stderr


def test_doctor_plans_a_model_dir_with_real_sessions(runtime_model):
    done = _doctor("--model", str(runtime_model), "--json")
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)["model"]
    assert "error" not in model, model
    placement = model["placement"]
    assert set(placement) == {"encoder", "rvq", "decoder"}
    for stage in ("encoder", "decoder"):
        ran_on = placement[stage]["ran_on"]
        # onnxruntime's own assignment: the EP the stage landed on took nodes
        assert placement[stage]["node_counts"].get(ran_on, 0) > 0, placement[stage]
    text = _doctor("--model", str(runtime_model))
    assert text.returncode == 0 and "placement:" in text.stdout


def test_doctor_json_shows_vitisai_options_op_checks_and_the_worker_plan():
    from pathlib import Path

    bundled = Path(__file__).resolve().parents[1] / "apucodec" / "models" / "default"
    done = _doctor("--model", str(bundled), "--json", "--worker", "encoder=self")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    graphs = report["vitisai"]["graphs"]
    assert set(graphs) == {"encoder.s128.npu-int8.onnx", "encoder.s128.onnx", "decoder.s128.onnx"}
    for entry in graphs.values():
        assert entry["options"]["enable_cache_file_io_in_mem"] == "0" and entry["options"]["cache_key"]
    assert "config_file" in graphs["encoder.s128.onnx"]["options"] and "config_file" not in graphs[
        "encoder.s128.npu-int8.onnx"]["options"]
    npu = report["vitisai"]["npu_generation"]
    assert npu is None or npu["target"] in ("X1", "X2")  # this machine's, if it has one
    # Each graph the NPU would get is checked against the list of the precision it runs in there: the INT8
    # encoder graphs against their preset's INT8 lists (the Sub of the bundled graphs' older bounds masks is on
    # Ryzen AI 1.5's list), an FP32 encoder graph only where no INT8 graph covers its step (the NPU then compiles
    # it to BF16); the decoder's graphs are the GPU's and are not held to an NPU list.
    checks = report["op_checks"]
    assert checks["int8"] and all(check["ready"] for check in checks["int8"].values()), checks["int8"]
    covered = {name.split(".")[1] for name in checks["int8"]}
    exported = {p.name.split(".")[1] for p in bundled.glob("encoder.s*.onnx") if p.name.count(".") == 2}
    assert set(checks["bf16"]) == {f"encoder.{s}.onnx" for s in exported - covered}
    worker = report["workers"]["encoder"]
    assert worker["onnxruntime"] and "CPUExecutionProvider" in worker["available_providers"]
