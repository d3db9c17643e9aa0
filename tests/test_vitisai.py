"""Vitis AI EP without an NPU: the options a run would pass, NPU generation detection, the operator report parser,
BF16 operator checks and the activation rewrite. The EP itself is never faked: provider selection is exercised
with the EP absent, the options through the functions that build them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from apucodec.errors import ApucodecError
from apucodec.model.directory import load_model_dir
from apucodec.runtime.eps import VITISAI
from apucodec.runtime.ort_options import session_options
from apucodec.runtime.stage_plan import SessionSettings, stage_candidates, stage_ep_options
from apucodec.runtime.vitisai import NpuGeneration, bf16_config, detect_npu, ep_context_entries, vitisai_options
from apucodec.runtime.vitisai_report import check_npu_only, find_counts, parse_compile_log, read_report

STRIX = NpuGeneration(0x17F0, "XDNA 2", "Strix / Strix Halo / Krackan", "X2", "test")
PHOENIX = NpuGeneration(0x1502, "XDNA", "Phoenix / Hawk Point", "X1", "test")


def _pci(root: Path, name: str, vendor: str, device: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "vendor").write_text(vendor + "\n")
    (root / name / "device").write_text(device + "\n")


def test_npu_generation_from_pci_ids_and_xrt_smi(tmp_path):
    root = tmp_path / "devices"
    _pci(root, "0000:00:01.0", "0x1022", "0x14ea")   # an AMD host bridge: not an NPU
    _pci(root, "0000:01:00.0", "0x10de", "0x17f0")   # right device id, wrong vendor
    assert detect_npu(root) is None
    _pci(root, "0000:c5:00.1", "0x1022", "0x17f0")
    npu = detect_npu(root)
    assert (npu.target, npu.architecture, npu.source) == ("X2", "XDNA 2", "pci 0000:c5:00.1") and not npu.needs_xclbin
    phoenix = tmp_path / "phx"
    _pci(phoenix, "0000:c4:00.1", "0x1022", "0x1502")
    assert detect_npu(phoenix).target == "X1" and detect_npu(phoenix).needs_xclbin
    assert detect_npu(tmp_path / "none", "Device(s) Present\n|[0000:c5:00.1] |NPU Strix |").target == "X2"
    assert detect_npu(tmp_path / "none", "xrt-smi: no devices") is None


def test_vitisai_options_follow_the_documented_rules():
    options, notes = vitisai_options({"log_level": "info"}, "encoder_int8", "ab" * 32, fp32_graph=False, npu=STRIX)
    assert options["enable_cache_file_io_in_mem"] == "0" and options["target"] == "X2"
    assert options["cache_key"] == "apucodec-encoder-int8-abababababababab" and "log_level" not in options
    assert "config_file" not in options
    bf16, notes = vitisai_options({}, "encoder", "cd" * 32, fp32_graph=True, npu=PHOENIX, optimize_level=3)
    assert bf16["target"] == "X1" and bf16["config_file"].endswith(".vaiml.json")
    assert any("xclbin" in n for n in notes) and any("BF16" in n for n in notes)
    mine, _ = vitisai_options({"target": "X1", "enable_cache_file_io_in_mem": "1"}, "encoder", "0" * 64, False, STRIX)
    assert mine["target"] == "X1" and mine["enable_cache_file_io_in_mem"] == "1"  # what the user set wins
    assert vitisai_options({}, "encoder", "0" * 64, False, None)[0].get("target") is None
    config = bf16_config(3)
    partition = next(p for p in config["passes"] if p["name"] == "vaiml_partition")
    assert partition["vaiml_config"] == {"optimize_level": 3} and config["target"] == "VAIML"
    with pytest.raises(ValueError):
        bf16_config(4)


def test_bf16_precision_selects_the_fp32_graph_with_a_config_file_on_the_npu(runtime_model):
    model = load_model_dir(runtime_model)
    settings = SessionSettings(encoder_graph="bf16")
    requested, candidates = stage_candidates(model, "encoder", settings)
    npu, cpu = candidates
    assert (requested, npu.ep, npu.role) == (VITISAI, VITISAI, "encoder.s8") and "BF16" in npu.graph_reason
    assert npu.options["config_file"].endswith(".vaiml.json") and npu.options["enable_cache_file_io_in_mem"] == "0"
    assert cpu.role == "encoder.s8" and cpu.options == {}
    decoder = stage_ep_options(model, VITISAI, settings, "decoder.s8")
    assert "config_file" in decoder  # the FP32 decoder on the NPU is a BF16 compile too


def test_ep_context_options_reach_the_session():
    settings = SessionSettings(ep_context=ep_context_entries(True, "/models/encoder_ctx.onnx", embed=True))
    so = session_options(settings, strict_ep=False, profile_dir=None)
    assert so.get_session_config_entry("ep.context_enable") == "1"
    assert so.get_session_config_entry("ep.context_embed_mode") == "1"
    assert so.get_session_config_entry("ep.context_file_path") == "/models/encoder_ctx.onnx"
    assert ep_context_entries(False) == {}


# The report's documented shape (Ryzen AI docs/modelrun.rst, "Operator Assignment Report"): the NPU is "DPU" there
DOCUMENTED = {"deviceStat": [{"name": "all", "nodeNum": 402, "supportedOpType": ["::Add", "::Conv"]},
                             {"name": "CPU", "nodeNum": 2, "supportedOpType": ["::DequantizeLinear"]},
                             {"name": "DPU", "nodeNum": 400, "supportedOpType": ["::Add", "::Conv"]}]}
# as newer EPs write it: "NPU", with the EP's own CPU fallback counted separately
NEWER = {"deviceStat": [{"name": "all", "nodeNum": 965}, {"name": "CPU", "nodeNum": 298},
                        {"name": "VITIS_EP_CPU", "nodeNum": 667, "supportedOpType": ["::LeakyRelu"]}],
         "subgraphStat": []}


def test_operator_report_parser(tmp_path):
    entry = tmp_path / "cache" / "apucodec-encoder-int8-x"
    entry.mkdir(parents=True)
    (entry / "vitisai_ep_report.json").write_text(json.dumps(DOCUMENTED))
    counts = find_counts(str(tmp_path / "cache"), "apucodec-encoder-int8-x")
    assert counts.counts == {"CPU": 2, "NPU": 400} and (counts.on_npu, counts.on_cpu) == (400, 2)
    assert counts.cpu_op_types == ["DequantizeLinear"] and "vitisai_ep_report.json" in counts.source
    (entry / "vitisai_ep_report.json").write_text(json.dumps(NEWER))
    rejected = read_report(entry / "vitisai_ep_report.json")
    assert rejected.on_npu == 0 and rejected.on_cpu == 965 and rejected.cpu_op_types == ["LeakyRelu"]
    with pytest.raises(ApucodecError, match="965 operators run on the CPU inside the Vitis AI EP"):
        check_npu_only("encoder", rejected)
    (entry / "vitisai_ep_report.json").write_text("[1, 2]")
    with pytest.raises(ApucodecError, match="not a Vitis AI operator assignment report"):
        read_report(entry / "vitisai_ep_report.json")
    with pytest.raises(ApucodecError, match="cannot prove NPU placement"):
        check_npu_only("encoder", find_counts(str(tmp_path / "cache"), "absent", "no counts here"))


def test_compile_log_counts():
    # the single-line form (Ryzen AI getting-started output) and the BF16 compile's "VAIML" name
    assert parse_compile_log("Using TXN FORMAT 0.1\n[Vitis AI EP] No. of Operators :   NPU   398 VITIS_EP_CPU     2\n"
                             "[Vitis AI EP] No. of Subgraphs :   NPU     1 Actually running on NPU      1\n"
                             ).counts == {"NPU": 398, "VITIS_EP_CPU": 2}
    assert parse_compile_log("[Vitis AI EP] No. of Operators : VAIML   490 VITIS_EP_CPU     2\n"
                             "[Vitis AI EP] No. of Subgraphs : VAIML     1").counts == {"NPU": 490, "VITIS_EP_CPU": 2}
    # ONNX Runtime's log prefix splitting it over lines (Ryzen AI docs/inst.rst)
    split = ("[I:onnxruntime:, stat.cpp:198 stat.cpp] [Vitis AI EP] No. of Operators :\n"
             "[I:onnxruntime:, stat.cpp:198 stat.cpp]    NPU   398\n"
             "[I:onnxruntime:, stat.cpp:198 stat.cpp] VITIS_EP_CPU     2\n"
             "[I:onnxruntime:, stat.cpp:198 stat.cpp] [Vitis AI EP] No. of Subgraphs :\n"
             "[I:onnxruntime:, stat.cpp:198 stat.cpp]    NPU     1\n")
    counts = parse_compile_log(split)
    assert counts.counts == {"NPU": 398, "VITIS_EP_CPU": 2} and counts.source == "compile log"
    assert parse_compile_log("nothing compiled: a cache hit logs no counts") is None


def test_bf16_op_check_and_rewrite_of_a_step_graph(runtime_model):
    """A freshly exported step graph: LeakyRelu is the only op outside the BF16 list (the bounds masks are
    Add/Max/Min/Mul, listed); after the rewrite every op is listed and the output is bit-identical."""
    onnx = pytest.importorskip("onnx")
    from apucodec.calibration.bf16_rewrite import bf16_rewrite
    from apucodec.contract.npu_ops import check_bf16_ops, check_npu_ops

    model = onnx.load(runtime_model / "encoder.s4.onnx")
    before = check_bf16_ops(model)
    assert before.not_listed == ["LeakyRelu"] and not before.ready  # LeakyRelu is listed for INT8 modes only
    assert set(check_npu_ops(model).not_listed) <= {"Constant"}  # folded at load; every compute op is listed
    rewritten, replaced = bf16_rewrite(model)
    assert replaced == {"LeakyRelu": before.op_counts["LeakyRelu"]} and check_bf16_ops(rewritten).ready
    onnx.checker.check_model(rewritten)
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             * 0.3 for i in model.graph.input}
    feeds["bounds"] = np.array([1.0, 9.0], dtype=np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # compare the ops, not fusions
    a = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    b = ort.InferenceSession(rewritten.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))  # Max(x, a*x) is LeakyRelu exactly


def test_gelu_and_relu_rewrites_are_numerically_equal():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from apucodec.calibration.bf16_rewrite import bf16_rewrite
    from apucodec.contract.npu_ops import check_bf16_ops

    graph = helper.make_graph([helper.make_node("Gelu", ["x"], ["g"]), helper.make_node("Relu", ["g"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 256])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    rewritten, replaced = bf16_rewrite(model)
    assert replaced == {"Gelu": 1, "Relu": 1} and check_bf16_ops(rewritten).ready
    x = np.linspace(-6, 6, 1024, dtype=np.float32).reshape(4, 256)
    run = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
           for m in (model, rewritten)]
    np.testing.assert_allclose(run[1], run[0], rtol=0, atol=2e-6)


def test_a_shipped_ep_context_graph_is_what_the_npu_loads(runtime_model, tmp_path):
    import shutil

    from apucodec.model.directory import file_entry

    path = tmp_path / "model"
    shutil.copytree(runtime_model, path)
    shutil.copy(path / "encoder.s8.onnx", path / "encoder.s8_ctx.onnx")  # stands in for a precompiled graph
    model = load_model_dir(path)
    # the stand-in is a copy of a step graph, so it reads the stage's shared weights file and its entry says so
    model.files["encoder.s8_ctx"] = file_entry(path / "encoder.s8_ctx.onnx", "encoder.s8_ctx",
                                                external_data=["encoder.fp32.weights"])
    model.save_manifest()
    model = load_model_dir(path)
    _, (npu, cpu) = stage_candidates(model, "encoder", SessionSettings())
    assert npu.path.name == "encoder.s8_ctx.onnx" and "precompiled EP-context" in npu.graph_reason
    assert "config_file" not in npu.options  # already compiled: no BF16 compile config
    assert cpu.path.name == "encoder.s8.onnx"  # the CPU never loads the NPU's context graph


def test_cli_precision_and_ep_context_reach_the_settings(runtime_model):
    from apucodec.cli.stage_options import settings_overrides

    model = load_model_dir(runtime_model)
    got = settings_overrides(model, ("encoder=self",), 5.0, "bf16", "auto", "/tmp/enc_ctx.onnx")
    assert got["encoder_graph"] == "bf16" and got["workers"] == {"encoder": "self"} and got["worker_timeout"] == 5.0
    assert got["ep_context"] == {"ep.context_enable": "1", "ep.context_embed_mode": "1",
                                 "ep.context_file_path": "/tmp/enc_ctx.onnx"}
    with pytest.raises(ApucodecError, match="disagree"):
        settings_overrides(model, (), 5.0, "bf16", "int8")
    # EP-context entries go to the compiling EP's session only: a CPU session would have nothing to dump
    settings = SessionSettings(ep_context=got["ep_context"])
    with pytest.raises(RuntimeError, match="does not have configuration with key"):
        session_options(settings, False, None, compiling=False).get_session_config_entry("ep.context_enable")
