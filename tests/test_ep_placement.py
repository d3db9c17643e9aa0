"""EP placement: preference order, fallback with a reason, --strict, node counts, encoder graph choice, EP options."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import onnxruntime as ort
import pytest

from apucodec.errors import ApucodecError
from apucodec.model.directory import file_entry, load_model_dir
from apucodec.runtime import sessions
from apucodec.runtime.eps import CPU, CUDA, VITISAI, parse_ep_list, resolve_ep_name
from apucodec.runtime.sessions import open_sessions
from apucodec.runtime.stage_plan import SessionSettings, choose_encoder_graph, stage_ep_options
from tests.runtime_models import CPU_ONLY

needs_no_vitisai = pytest.mark.skipif(VITISAI in ort.get_available_providers(),
                                      reason="this onnxruntime has the Vitis AI EP: no fallback to observe")
needs_no_cuda = pytest.mark.skipif(CUDA in ort.get_available_providers(),
                                   reason="this onnxruntime has the CUDA EP: no fallback to observe")


@pytest.fixture()
def model(runtime_model):
    return load_model_dir(runtime_model)


@pytest.fixture()
def model_with_int8(runtime_model, tmp_path):
    """A copy whose encoder_int8 role is a copy of the FP32 graph: enough to see which file a session opens."""
    path = tmp_path / "model"
    shutil.copytree(runtime_model, path)
    shutil.copy(path / "encoder.s8.onnx", path / "encoder.s8.npu-int8.onnx")
    model = load_model_dir(path)
    fp32 = model.files["encoder.s8"]
    model.files["encoder.s8.npu-int8"] = file_entry(path / "encoder.s8.npu-int8.onnx", "encoder.s8.npu-int8",
                                                     precision="npu-int8", external_data=fp32.external_data,
                                                     **fp32.step_facts())
    model.save_manifest()
    return load_model_dir(path)


def test_names_and_orders():
    assert resolve_ep_name("npu") == VITISAI and resolve_ep_name("CPU") == CPU
    assert resolve_ep_name("cudaexecutionprovider") == CUDA
    assert parse_ep_list(None, "encoder") == (VITISAI, CPU)
    assert parse_ep_list("cuda, cpu,cuda", "decoder") == (CUDA, CPU)
    with pytest.raises(ApucodecError, match="unknown execution provider 'gpu'"):
        resolve_ep_name("gpu")


@needs_no_vitisai
@needs_no_cuda
def test_fallback_is_reported_and_warned_only_when_asked_for(model, tmp_path, monkeypatch):
    """The default order falling back on a machine without the hardware is no news: reported, not warned; an EP
    the user named is warned about."""
    monkeypatch.setenv("APUCODEC_CACHE_DIR", str(tmp_path / "cache"))  # cold: the source graph is partitioned
    warnings: list[str] = []
    settings = SessionSettings(decoder_eps=("cuda", "cpu"), threads=1)
    _, report = open_sessions(model, settings, warn=warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith("decoder: running on CPU, not CUDA")
    enc, dec = report.stage("encoder"), report.stage("decoder")
    assert (enc.requested, enc.ran_on) == (VITISAI, CPU) and "not in this onnxruntime build" in enc.fallback_reason
    assert (dec.requested, dec.ran_on) == (CUDA, CPU) and enc.fell_back and dec.fell_back
    assert report.stage("rvq").ran_on == "NumPy (CPU)" and not report.stage("rvq").fell_back
    # nodes per EP come from onnxruntime's assignment record: all of the graph's nodes, all on the CPU
    info = model.files["encoder.s8"].graph
    graph_nodes = info.nodes - info.ops.get("Constant", 0)  # ORT folds Constant nodes into initializers
    assert enc.node_counts == {CPU: graph_nodes}
    text = report.format()
    assert "asked VitisAI, ran on CPU" in text and f"CPU {graph_nodes}" in text and "fallback:" in text
    assert json.loads(json.dumps(report.to_dict()))["decoder"]["ran_on"] == CPU


def test_asking_for_the_cpu_is_not_a_fallback(model):
    warnings: list[str] = []
    _, report = open_sessions(model, CPU_ONLY, warn=warnings.append)
    assert warnings == [] and not any(p.fell_back for p in report.stages)


@needs_no_vitisai
def test_strict_refuses_to_fall_back(model):
    with pytest.raises(ApucodecError, match=r"encoder: VitisAIExecutionProvider cannot run it .*--strict"):
        open_sessions(model, SessionSettings(strict=True), warn=None, stages=("encoder",))
    # strict on the EP that is there: fine, and ONNX Runtime was told not to move nodes elsewhere
    sessions, report = open_sessions(model, SessionSettings(encoder_eps=("cpu",), strict=True, threads=1),
                                     warn=None, stages=("encoder",))
    assert report.stage("encoder").ran_on == CPU


def test_profiler_node_counts_equal_the_assignment_record(model, monkeypatch, tmp_path):
    """Older onnxruntime versions lack the assignment record; one profiled run must count the same nodes."""
    monkeypatch.setenv("APUCODEC_CACHE_DIR", str(tmp_path / "cache"))  # cold: the source graph is partitioned
    _, recorded = open_sessions(model, CPU_ONLY, warn=None)
    monkeypatch.setattr(sessions, "needs_profiler", lambda: True)
    _, profiled = open_sessions(model, CPU_ONLY, warn=None)
    for stage in ("encoder", "decoder"):
        ran, assigned = profiled.stage(stage), recorded.stage(stage)
        assert (ran.node_source, assigned.node_source) == ("profiled", "assigned")
        assert set(ran.node_counts) == set(assigned.node_counts) == {CPU}
        # the profiler sees kernels after fusion (Conv + activation become one), so at most the graph's nodes
        info = model.files[f"{stage}.s8"].graph
        assert 0 < ran.node_counts[CPU] <= assigned.node_counts[CPU] == info.nodes - info.ops.get("Constant", 0)
    assert "after fusion" in profiled.format()


def test_encoder_graph_choice(model, model_with_int8):
    assert choose_encoder_graph(model_with_int8, VITISAI, "auto", 8)[0] == "encoder.s8.npu-int8"
    assert choose_encoder_graph(model_with_int8, CPU, "auto", 8)[0] == "encoder.s8"
    assert choose_encoder_graph(model_with_int8, VITISAI, "fp32", 8) == ("encoder.s8", "forced by --encoder fp32")
    role, why = choose_encoder_graph(model, VITISAI, "auto", 8)
    assert role == "encoder.s8" and "quantize-encoder" in why
    with pytest.raises(ApucodecError, match="no INT8 encoder"):
        choose_encoder_graph(model, CPU, "int8", 8)
    _, report = open_sessions(model_with_int8, SessionSettings(encoder_eps=("cpu",), encoder_graph="int8", threads=1),
                              warn=None, stages=("encoder",))
    assert report.stage("encoder").graph == "encoder.s8.npu-int8.onnx"
    _, report = open_sessions(model_with_int8, SessionSettings(encoder_eps=("cpu",), threads=1), warn=None,
                              stages=("encoder",))
    assert report.stage("encoder").graph == "encoder.s8.onnx" and "INT8 graph is for the NPU" in report.format()


def test_ep_options_from_manifest_and_caller(model_with_int8):
    model = model_with_int8
    model.manifest.providers = {"VitisAIExecutionProvider": {"target": "X2", "cache_dir": "npu-cache"},
                                   "webgpu": {"preferredLayout": "NCHW"}}
    settings = SessionSettings(ep_options={VITISAI: {"target": "X1"}})
    options = stage_ep_options(model, VITISAI, settings, "encoder.s8.npu-int8")
    assert options["target"] == "X1"  # the caller wins over the manifest
    assert options["cache_dir"] == str((model.path / "npu-cache").resolve())  # relative to the model directory
    # keyed by the graph's sha256 and, as this stand-in reads the shared weights file, that file's too: two models
    # with byte-identical graph files and other weights must not share a compiled NPU graph
    sha = model.content_sha256("encoder.s8.npu-int8")
    assert sha != model.files["encoder.s8.npu-int8"].sha256
    assert options["cache_key"] == f"apucodec-encoder-s8-npu-int8-{sha[:16]}"
    assert options["enable_cache_file_io_in_mem"] == "0"  # else the INT8 cache is ignored and every run recompiles
    fp32 = stage_ep_options(model, VITISAI, settings, "encoder.s8")
    assert fp32["cache_key"] != options["cache_key"]  # the two graphs never share a compiled cache entry
    assert stage_ep_options(model, "WebGpuExecutionProvider", SessionSettings(), "decoder.s8") == {
        "preferredLayout": "NCHW"}
    assert stage_ep_options(model, CPU, settings, "encoder.s8") == {}


def test_a_graph_that_does_not_match_the_manifest_step_graph_is_refused(runtime_model, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(runtime_model, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["encoder.s8"]["inputs"][0]["shape"][-1] += 512
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ApucodecError, match=r"encoder.s8.onnx: input .audio. has shape .* manifest.s step graph"):
        open_sessions(load_model_dir(path), SessionSettings(encoder_eps=("cpu",)), warn=None)


WEBGPU_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from apucodec.runtime.webgpu import find_webgpu_devices
    if not find_webgpu_devices().available:
        print("NO-WEBGPU", find_webgpu_devices().reason); sys.exit(0)
    from apucodec.runtime import CodecEngine, SessionSettings
    from apucodec.runtime.eps import parse_ep_list
    x = (0.3 * np.sin(np.arange(30000) / 7.0)).astype(np.float32)
    warnings = []
    gpu = CodecEngine.open(sys.argv[1], SessionSettings(encoder_eps=("cpu",),
                           decoder_eps=parse_ep_list("webgpu", "decoder"), threads=1), warn=warnings.append)
    cpu = CodecEngine.open(sys.argv[1], SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1),
                           warn=None)
    a, _ = gpu.run_array(x)
    b, _ = cpu.run_array(x)
    print("RAN", gpu.placement.stage("decoder").ran_on, gpu.placement.stage("decoder").node_counts)
    print("MAXERR", float(np.abs(a - b).max()))
    bad = CodecEngine.open(sys.argv[1], SessionSettings(encoder_eps=("cpu",), decoder_eps=("webgpu",), threads=1,
                     ep_options={"WebGpuExecutionProvider": {"preferredLayout": "sideways"}}), warn=warnings.append)
    print("BAD", bad.placement.stage("decoder").ran_on, bad.placement.stage("decoder").fallback_reason)
    print("WARNINGS", len(warnings))
""")


def test_webgpu_decoder_on_the_software_adapter(runtime_model):
    """The real GPU code path (Dawn over Vulkan) on Mesa's lavapipe, as CI runs it; skipped without Vulkan."""
    env = {**os.environ, "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", WEBGPU_SCRIPT, str(runtime_model)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if "NO-WEBGPU" in proc.stdout:
        pytest.skip(proc.stdout.strip())
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert lines["RAN"].startswith("WebGpuExecutionProvider")
    assert float(lines["MAXERR"]) < 1e-4
    ran_on, reason = lines["BAD"].split(" ", 1)
    assert ran_on == CPU and "session creation failed" in reason  # a refused option falls back, with the reason
    assert lines["WARNINGS"] == "1"


@pytest.mark.parametrize("workers", [{}, {"encoder": "self"}], ids=["in-process", "worker"])
def test_a_stage_session_carries_the_manifest_entry_it_runs(model_with_int8, workers):
    """The session, not a search of the manifest by file name, says which step graph a stage runs."""
    settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), encoder_graph="int8", threads=1,
                               workers=workers)
    opened, report = open_sessions(model_with_int8, settings, warn=None)
    try:
        encoder, decoder = opened["encoder"].record, opened["decoder"].record
        assert (encoder.role, encoder.precision, encoder.step_frames) == ("encoder.s8.npu-int8", "npu-int8", 8)
        assert encoder is model_with_int8.files["encoder.s8.npu-int8"]
        assert (decoder.role, decoder.graph_precision) == ("decoder.s8", "fp32")
        assert report.stage("encoder").graph == encoder.name  # the report names the same file, for people
    finally:
        for session in opened.values():
            session.close()
    live, _ = open_sessions(model_with_int8, settings, warn=None, step_frames=4, stages=("decoder",))
    assert live["decoder"].record.role == "decoder.s4"
    live["decoder"].close()
