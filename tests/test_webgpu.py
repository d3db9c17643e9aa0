"""The decoder's GPU path for real: ONNX Runtime's WebGPU EP (Dawn over Vulkan) running the exported decoder.

Required in CI, where .ci/run installs Mesa 25's software Vulkan driver (lavapipe): with CI=true a missing adapter
fails the test. Elsewhere it runs wherever an adapter exists and is skipped with the probe's reason otherwise.

Each check runs in a child process with ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1: the plugin reads that variable once,
when it is registered, and setting it here keeps it out of the other tests' process (on lavapipe the GPU path is
20-40x slower than the CPU EP, so only these tests should pay for it). The lines starting with "webgpu-proof:" are
printed to the terminal even under `pytest -q`, so the CI log shows what ran where.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apucodec.runtime.webgpu import ALLOW_SOFTWARE_ENV, EP_NAME
from tests.audio_factory import RATE, speech_like

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHILD_ENV = {**os.environ, ALLOW_SOFTWARE_ENV: "1", "OMP_NUM_THREADS": "1"}
REPO = Path(__file__).resolve().parent.parent

PROBE_CODE = """
import json
from apucodec.runtime.webgpu import find_webgpu_devices
from apucodec.tools.gpu_report import webgpu_facts
print("RESULT " + json.dumps(webgpu_facts(find_webgpu_devices())))
"""

# The decoder on WebGPU with ONNX Runtime's CPU fallback disabled, against the CPU EP, on the latent the tiny
# model's encoder makes of speech-like audio; then the same stage through the runtime's providers (strict), whose
# placement report is what `apucodec run --report` prints.
PARITY_CODE = """
import json, sys
import numpy as np
import onnxruntime as ort
from apucodec.model.directory import load_model_dir
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.eps import CPU, WEBGPU
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.runtime.webgpu import add_webgpu_provider, find_webgpu_devices

model = load_model_dir(sys.argv[1])
audio = np.load(sys.argv[2]).astype(np.float32)
cpu_codec = CodecEngine(model, SessionSettings(encoder_eps=(CPU,), decoder_eps=(CPU,)), warn=None)
codes, _ = cpu_codec.encode_array(audio)
out_cpu, _ = cpu_codec.decode_codes(codes, audio.size)

probe = find_webgpu_devices()
so = ort.SessionOptions()
so.log_severity_level = 3
so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
add_webgpu_provider(so, probe.device)
gpu = ort.InferenceSession(str(model.path_of("decoder.s8")), so)
nodes = {}
for subgraph in gpu.get_provider_graph_assignment_info():
    nodes[subgraph.ep_name] = nodes.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())

# The runtime's decoder stage on WebGPU (strict: no CPU fallback), streamed step by step with its state.
gpu_codec = CodecEngine(model, SessionSettings(encoder_eps=(CPU,), decoder_eps=(WEBGPU,), strict=True), warn=None,
                  stages=("decoder",))
out_gpu, _ = gpu_codec.decode_codes(codes, audio.size)
stage = gpu_codec.placement.stage("decoder")
print("RESULT " + json.dumps({
    "adapter": probe.describe(),
    "session_providers": gpu.get_providers(),
    "nodes": nodes,
    "max_abs_diff": float(np.max(np.abs(out_gpu - out_cpu))),
    "output_rms": float(np.sqrt(np.mean(out_cpu ** 2))),
    "shape": [int(v) for v in gpu.get_outputs()[0].shape],
    "placement": stage.to_dict(),
    "placement_text": stage.describe(),
    "stage_max_abs_diff": float(np.max(np.abs(out_gpu - out_cpu))),
}))
"""


def _child(code: str, *args: str, timeout: int = 300) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=CHILD_ENV, cwd=REPO)
    assert done.returncode == 0, f"child failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"child printed no result:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def _proof(capsys: pytest.CaptureFixture, line: str) -> None:
    with capsys.disabled():
        print(f"\nwebgpu-proof: {line}", flush=True)


@pytest.fixture(scope="module")
def webgpu_probe() -> dict:
    """The WebGPU probe as a child process sees it (software adapters allowed); skip or fail when unavailable."""
    pytest.importorskip("onnxruntime_ep_webgpu", reason="the webgpu extra is not installed")
    probe = _child(PROBE_CODE, timeout=120)
    if not probe["available"]:
        message = f"no WebGPU adapter even with {ALLOW_SOFTWARE_ENV}=1: {probe['reason']}"
        if IN_CI:
            pytest.fail(f"CI requires the WebGPU EP (.ci/run installs Mesa 25 lavapipe): {message}")
        pytest.skip(message)
    return probe


def test_decoder_runs_every_node_on_webgpu_and_matches_cpu(webgpu_probe, runtime_model, tmp_path, capsys):
    np.save(tmp_path / "audio.npy", speech_like(1.0))
    result = _child(PARITY_CODE, str(runtime_model), str(tmp_path / "audio.npy"))

    assert result["session_providers"][0] == EP_NAME
    # CPU fallback disabled, and ONNX Runtime's own record puts every node on the WebGPU EP
    assert set(result["nodes"]) == {EP_NAME} and result["nodes"][EP_NAME] > 0, result["nodes"]
    assert result["output_rms"] > 1e-4, "decoder output is silent: the parity check would prove nothing"
    assert result["max_abs_diff"] <= 1e-4, result

    placement = result["placement"]
    assert placement["requested"] == EP_NAME and placement["ran_on"] == EP_NAME
    assert placement["fallback_reason"] is None
    assert set(placement["node_counts"]) == {EP_NAME}, placement["node_counts"]
    assert result["stage_max_abs_diff"] <= 1e-4

    _proof(capsys, f"adapter: {result['adapter']}")
    _proof(capsys, f"decoder {result['shape']}: nodes per EP {result['nodes']} (session.disable_cpu_ep_fallback=1);"
                   f" max |WebGPU - CPU| = {result['max_abs_diff']:.2e} (output rms {result['output_rms']:.3f})")
    _proof(capsys, f"placement report: {result['placement_text']}")


def test_apucodec_run_end_to_end_with_decoder_on_webgpu(webgpu_probe, runtime_model, tmp_path, capsys):
    source = tmp_path / "in.wav"
    sf.write(source, speech_like(1.5), RATE, subtype="FLOAT")
    outputs = {}
    reports = {}
    for ep in ("webgpu", "cpu"):
        out = tmp_path / f"out_{ep}.wav"
        done = subprocess.run(
            [sys.executable, "-c", "from apucodec.cli.main import main; main()", "run", str(source), str(out),
             "--model", str(runtime_model), "--encoder-ep", "cpu", "--decoder-ep", ep, "--strict", "--report"],
            capture_output=True, text=True, timeout=300, env=CHILD_ENV, cwd=REPO)
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        reports[ep] = done.stdout
        outputs[ep], rate = sf.read(out, dtype="float32")
        assert rate == RATE
    decoder_lines = [line for line in reports["webgpu"].splitlines() if line.strip().startswith("decoder")]
    assert decoder_lines, reports["webgpu"]
    assert "ran on WebGpu" in decoder_lines[0] and "fallback" not in decoder_lines[0], decoder_lines[0]
    nodes = decoder_lines[0].split("nodes:", 1)[-1].split(";", 1)[0]
    assert "WebGpu" in nodes and "CPU" not in nodes, decoder_lines[0]
    assert outputs["webgpu"].shape == outputs["cpu"].shape
    assert np.sqrt(np.mean(outputs["cpu"] ** 2)) > 1e-4
    assert float(np.max(np.abs(outputs["webgpu"] - outputs["cpu"]))) <= 1e-4

    summary = next(line for line in reports["webgpu"].splitlines() if line.startswith("run:"))
    assert "decoder WebGpu" in summary, summary
    _proof(capsys, f"apucodec run --decoder-ep webgpu --strict --report: {decoder_lines[0].strip()}")
    _proof(capsys, f"apucodec {summary}")
