"""CPU INT8 graphs: the polyphase ConvTranspose rewrite, the generic quantizer over feed dicts (multi-input, stateful
step graphs, exclusions), and `apucodec quantize --target cpu` on the tiny model (files, manifest, bad input).

Everything runs on small generated graphs, the session's tiny exported model and generated audio.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
from onnx import TensorProto, helper, numpy_helper

from apucodec.calibration.conv_transpose import conv_transpose_to_conv
from apucodec.calibration.cpu_int8 import quantize_graph_cpu_int8
from apucodec.calibration.feeds import stepped_feeds
from apucodec.calibration.state_ranges import MOVE_OPS
from apucodec.contract.steps import step_role
from apucodec.dsp.metrics import snr_db
from apucodec.errors import ApucodecError
from apucodec.model.checks import external_data_refs
from apucodec.model.directory import load_model_dir
from tests.audio_factory import mixture, speech_like, tone
from tests.cli_helpers import invoke
from tests.refusal_helpers import dir_state
from tests.runtime_models import export_tiny

RATE = 44100


def _session(path: Path | str, optimized: Path | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ops(path: Path) -> Counter[str]:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _conv_transpose_graph(c_in: int, c_out: int, k: int, s: int, pads: list[int], out_pad: int, length: int,
                          seed: int = 0, group: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c_in, c_out // group, k)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="up", strides=[s], kernel_shape=[k],
                            pads=pads, output_padding=[out_pad], group=group)
    out_len = (length - 1) * s + k - sum(pads) + out_pad
    graph = helper.make_graph([node], "ct", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, length])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, out_len])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("k", "s", "pads", "out_pad"), [(16, 8, [4, 4], 0), (4, 2, [1, 1], 0), (7, 3, [0, 0], 0),
                                                         (5, 2, [2, 1], 1), (3, 3, [0, 0], 0), (8, 4, [2, 2], 0)])
def test_polyphase_rewrite_is_exact(k: int, s: int, pads: list[int], out_pad: int, tmp_path: Path) -> None:
    model = _conv_transpose_graph(5, 6, k, s, pads, out_pad, length=11)
    rewritten, replaced = conv_transpose_to_conv(model)
    assert list(replaced) == ["up"]
    ops = Counter(n.op_type for n in rewritten.graph.node)
    assert ops["ConvTranspose"] == 0 and ops["Conv"] == 1
    onnx.checker.check_model(rewritten)
    onnx.save(model, tmp_path / "a.onnx")
    onnx.save(rewritten, tmp_path / "b.onnx")
    x = np.random.default_rng(1).standard_normal((1, 5, 11)).astype(np.float32)
    ya = _session(tmp_path / "a.onnx").run(None, {"x": x})[0]
    yb = _session(tmp_path / "b.onnx").run(None, {"x": x})[0]
    assert ya.shape == yb.shape
    np.testing.assert_allclose(yb, ya, atol=1e-5, rtol=1e-5)


def test_polyphase_rewrite_leaves_grouped_conv_transpose_alone() -> None:
    model = _conv_transpose_graph(4, 4, 4, 2, [1, 1], 0, length=8, group=2)
    rewritten, replaced = conv_transpose_to_conv(model)
    assert replaced == {}
    assert [n.op_type for n in rewritten.graph.node] == ["ConvTranspose"]


@pytest.fixture(scope="module")
def step_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny codec exported with 4- and 16-frame step graphs (a 16-frame offline step keeps calibration quick)."""
    return export_tiny(tmp_path_factory.mktemp("cpu_int8_model") / "model", step_frames=(4, 16)).path


@pytest.fixture(scope="module")
def step_feeds(step_model: Path) -> dict[str, list[dict[str, np.ndarray]]]:
    """Per stage, the recorded feeds of the s16 step graphs over two short clips streamed through the codec."""
    from apucodec.calibration.cpu_quantize import record_steps

    model = load_model_dir(step_model)
    roles = {"encoder": "encoder.s16", "decoder": "decoder.s16"}
    sessions = {stage: _session(model.path_of(role)) for stage, role in roles.items()}
    clips = [mixture(0.5, seed=1), speech_like(0.5, seed=2)]
    return record_steps(model, roles, sessions, clips)


def test_tiny_decoder_runs_as_integer_kernels_only_with_polyphase(step_model: Path, step_feeds: dict,
                                                                 tmp_path: Path) -> None:
    """ORT's optimized graph: every convolution of the polyphase INT8 decoder step graph is a QLinearConv; without
    the rewrite the ConvTranspose nodes stay float (the reason the decoder gained less than the encoder)."""
    from apucodec.calibration.step_nodes import bounds_nodes

    source = load_model_dir(step_model).path_of("decoder.s16")
    feeds = step_feeds["decoder"]
    float_nodes = bounds_nodes(onnx.load(str(source)))
    n_transposed = _ops(source)["ConvTranspose"]
    assert n_transposed > 0
    results = {}
    for polyphase in (True, False):
        out = tmp_path / f"dec.{polyphase}.onnx"
        result = quantize_graph_cpu_int8(source, out, iter(feeds[:-1]), polyphase=polyphase,
                                         exclude_nodes=float_nodes)
        assert result.feeds == len(feeds) - 1 and len(result.polyphase) == (n_transposed if polyphase else 0)
        optimized = tmp_path / f"opt.{polyphase}.onnx"
        session = _session(out, optimized)
        results[polyphase] = _ops(optimized)
        reference = _session(source).run(None, feeds[-1])[0]
        assert snr_db(reference, session.run(None, feeds[-1])[0]) > 15.0
    assert results[True]["ConvTranspose"] == 0 and results[True]["Conv"] == 0 and results[True]["FusedConv"] == 0
    assert results[True]["QLinearConv"] == _ops(source)["Conv"] + n_transposed
    assert results[False]["ConvTranspose"] == n_transposed


def test_encoder_quantized_with_exclusions(step_model: Path, step_feeds: dict, tmp_path: Path) -> None:
    from apucodec.calibration.step_nodes import bounds_nodes

    source = load_model_dir(step_model).path_of("encoder.s16")
    graph = onnx.load(str(source))
    convs = [n.name for n in graph.graph.node if n.op_type == "Conv"]
    feeds = step_feeds["encoder"]
    out = tmp_path / "enc.onnx"
    progress: list[int] = []
    result = quantize_graph_cpu_int8(source, out, iter(feeds[:-1]), on_feed=progress.append,
                                     exclude_nodes=[convs[0], *bounds_nodes(graph)])
    assert progress == list(range(1, len(feeds)))
    assert convs[0] in result.excluded_nodes
    # The excluded Conv keeps its float weight (no DequantizeLinear in front of it); every other Conv reads int8
    # weights. (ORT may still fuse the excluded one into an integer kernel at run time: its neighbours are
    # quantized, see quantize_graph_cpu_int8.)
    quantized = onnx.load(str(out))
    initializers = {i.name for i in quantized.graph.initializer}
    produced_by = {o: n.op_type for n in quantized.graph.node for o in n.output}
    weight_source = {n.name: ("float" if n.input[1] in initializers else produced_by.get(n.input[1]))
                     for n in quantized.graph.node if n.op_type == "Conv"}
    assert weight_source[convs[0]] == "float"
    assert sum(v == "DequantizeLinear" for v in weight_source.values()) == len(convs) - 1
    optimized = tmp_path / "opt.onnx"
    _session(out, optimized)
    assert _ops(optimized)["QLinearConv"] >= len(convs) - 1
    reference = _session(source).run(None, feeds[-1])[0]
    assert snr_db(reference, _session(out).run(None, feeds[-1])[0]) > 15.0


def test_bad_feeds_are_one_clear_error(step_model: Path, tmp_path: Path) -> None:
    source = load_model_dir(step_model).path_of("encoder.s16")
    out = tmp_path / "enc.onnx"
    with pytest.raises(ApucodecError, match=r"calibration feed has inputs \['wrong'\], the graph takes "
                                            r"\['audio', 'bounds', 'state'\]"):
        quantize_graph_cpu_int8(source, out, iter([{"wrong": np.zeros((1, 1, 4), np.float32)}]))
    with pytest.raises(ApucodecError, match="no calibration feeds"):
        quantize_graph_cpu_int8(source, out, iter([]))
    with pytest.raises(ApucodecError, match="nodes to exclude not in the graph: nope"):
        quantize_graph_cpu_int8(source, out, iter([]), exclude_nodes=["nope"])
    assert list(tmp_path.iterdir()) == []


def _step_graph(channels: int = 4, step: int = 16, kernel: int = 5) -> onnx.ModelProto:
    """A miniature stateful step graph shaped like the lead's: audio [1, 1, S], state [1, N], bounds [2] ->
    out [1, C, S], next_state [1, N]. A causal Conv reads the state (the previous input's tail) ++ audio; the
    output is multiplied by a mask built from `bounds` (the float bookkeeping a caller keeps out of INT8)."""
    rng = np.random.default_rng(3)
    tail = kernel - 1
    inits = [numpy_helper.from_array(rng.standard_normal((channels, 1, kernel)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([1, 1, tail], np.int64), "state_shape"),
             numpy_helper.from_array(np.array([1, tail], np.int64), "flat_shape"),
             numpy_helper.from_array(np.array([-tail], np.int64), "tail_start"),
             numpy_helper.from_array(np.array([step + tail], np.int64), "tail_end"),
             numpy_helper.from_array(np.array([2], np.int64), "axis2"),
             numpy_helper.from_array(np.arange(step, dtype=np.float32), "positions"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one")]
    nodes = [
        helper.make_node("Reshape", ["state", "state_shape"], ["past"], name="past"),
        helper.make_node("Concat", ["past", "audio"], ["joined"], name="join", axis=2),
        helper.make_node("Conv", ["joined", "w", "b"], ["conv"], name="conv", kernel_shape=[kernel]),
        helper.make_node("Slice", ["bounds", "zero", "one"], ["lo"], name="lo"),
        helper.make_node("Slice", ["bounds", "one", "axis2"], ["hi"], name="hi"),
        helper.make_node("GreaterOrEqual", ["positions", "lo"], ["after"], name="after"),
        helper.make_node("Less", ["positions", "hi"], ["before"], name="before"),
        helper.make_node("And", ["after", "before"], ["inside"], name="inside"),
        helper.make_node("Cast", ["inside"], ["mask"], name="mask", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["conv", "mask"], ["latent"], name="masked"),
        helper.make_node("Slice", ["joined", "tail_start", "tail_end", "axis2"], ["tail"], name="tail"),
        helper.make_node("Reshape", ["tail", "flat_shape"], ["next_state"], name="next"),
    ]
    graph = helper.make_graph(
        nodes, "step",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, step]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, tail]),
         helper.make_tensor_value_info("bounds", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, [1, channels, step]),
         helper.make_tensor_value_info("next_state", TensorProto.FLOAT, [1, tail])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _stepped_input(tmp_path: Path, count: int, seed: int, step: int = 16) -> tuple[Path, Any, np.ndarray, list]:
    """The toy step graph saved and opened, a signal of `count` steps, and its per-step feeds (no state yet)."""
    path = tmp_path / "step.onnx"
    onnx.save(_step_graph(step=step), path)
    signal = mixture(0.05, seed=seed)[: count * step].astype(np.float32)
    steps = [{"audio": signal[i * step:(i + 1) * step].reshape(1, 1, -1), "bounds": np.array([0, step], np.float32)}
             for i in range(count)]
    return path, _session(path), signal, steps


def test_stepped_feeds_carry_state_and_step_graph_quantizes(tmp_path: Path) -> None:
    step = 16
    path, session, signal, steps = _stepped_input(tmp_path, 8, seed=9, step=step)
    feeds = list(stepped_feeds(session, steps, {"state": "next_state"}))
    assert np.all(feeds[0]["state"] == 0)
    for i in range(1, 8):   # each step's state is the previous step's last 4 input samples
        np.testing.assert_array_equal(feeds[i]["state"][0], signal[i * step - 4:i * step])

    out = tmp_path / "step.int8.onnx"
    result = quantize_graph_cpu_int8(path, out, iter(feeds), exclude_nodes=["masked"],
                                     exclude_op_types=["Cast", "Less", "GreaterOrEqual", "And"])
    assert result.feeds == 8 and "masked" in result.excluded_nodes
    quantized = _session(out)
    assert {i.name for i in quantized.get_inputs()} == {"audio", "state", "bounds"}
    half = dict(feeds[5], bounds=np.array([0, step // 2], np.float32))
    ours = quantized.run(None, half)
    reference = session.run(None, half)
    assert np.all(ours[0][..., step // 2:] == 0)       # the float mask still zeroes exactly
    assert snr_db(reference[0], ours[0]) > 25.0
    assert snr_db(reference[1], ours[1]) > 30.0


# --- the model-directory pass --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def calib_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calib_cpu")
    sf.write(folder / "music.wav", mixture(5.0, seed=3), RATE)
    sf.write(folder / "speech.flac", speech_like(5.0, seed=4), RATE)
    sf.write(folder / "tone.wav", tone(5.0, 330.0), RATE)
    return folder


def _model_copy(step_model: Path, tmp_path: Path) -> Path:
    """A writable copy of the read-only step model, for a test that quantizes it."""
    model_path = tmp_path / "model"
    shutil.copytree(step_model, model_path)
    return model_path


def _roundings_away_from_convolutions(graph: onnx.ModelProto) -> list[str]:
    """Activations rounded to uint8 that are neither a convolution's output nor a convolution's input (which the
    step's state may copy: data movement, no arithmetic)."""
    nodes = graph.graph.node
    producer = {o: n.op_type for n in nodes for o in n.output}
    readers: dict[str, set[str]] = {}
    for n in nodes:
        for name in n.input:
            readers.setdefault(name, set()).add(n.op_type)
    weights = {i.name for i in graph.graph.initializer}
    rounded = [n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] not in weights]
    dequantized = {n.input[0]: n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
    return [q.input[0] for q in rounded if producer.get(q.input[0]) != "Conv"
            and not {"Conv"} <= readers.get(dequantized.get(q.output[0], ""), set()) <= {"Conv", *MOVE_OPS}]


def test_cli_quantize_cpu_writes_graphs_and_manifest(step_model: Path, calib_folder: Path, tmp_path: Path) -> None:
    model_path = _model_copy(step_model, tmp_path)
    weights = {p.name: p.read_bytes() for p in model_path.glob("*.weights")}
    assert set(weights) == {"encoder.fp32.weights", "decoder.fp32.weights"}  # the FP32 graphs read shared weights
    result = invoke("quantize", "--target", "cpu", "--model", str(model_path), "--calib", str(calib_folder),
                    "--clips", "6", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in model_path.glob("*.weights")} == weights  # read, never written
    assert not list(model_path.glob(".*"))                                             # no staging left over
    assert re.search(r"encoder: calibration (\d+)/\1 steps", result.output)
    assert re.search(r"decoder: calibration (\d+)/\1 steps", result.output)
    assert "end-to-end SI-SDR" in result.output
    model = load_model_dir(model_path)          # verifies every sha256, the new files included
    manifest = json.loads((model_path / "manifest.json").read_text())
    for stage in ("encoder", "decoder"):
        role, fp32 = step_role(stage, 16, "cpu-int8"), step_role(stage, 16)
        entry = model.files[role]
        assert entry.name == f"{role}.onnx" and entry.precision == "cpu-int8" and entry.target == "cpu"
        for key in ("stage", "step_frames", "state_size", "horizon_frames", "inputs", "outputs"):
            assert getattr(entry, key) == getattr(model.files[fp32], key)
        assert entry.graph.ops["QuantizeLinear"] > 0
        assert model.step_graph(stage, 16, "cpu-int8") is not None
    assert model.step_sizes("encoder") == [4, 16]             # the INT8 graphs add no step size
    report = manifest["cpu_int8"]
    assert report["graphs"]["decoder"]["conv_transpose_as_polyphase_conv"] > 0
    assert report["graphs"]["encoder"]["float_bounds_nodes"] > 0
    # the audio is never 8-bit: the encoder's input and the decoder's output are float, with no Q/DQ on them
    for stage in ("encoder", "decoder"):
        assert report["graphs"][stage]["float_audio_edge_nodes"]
    encoder = onnx.load(str(model.path_of(step_role("encoder", 16, "cpu-int8"))))
    decoder = onnx.load(str(model.path_of(step_role("decoder", 16, "cpu-int8"))))
    for stage in ("encoder", "decoder"):  # one INT8 graph per stage: self-contained, nothing to share
        assert not model.files[step_role(stage, 16, "cpu-int8")].external_data
        assert not external_data_refs(model.path_of(step_role(stage, 16, "cpu-int8")))
    audio_in, audio_out = encoder.graph.input[0].name, decoder.graph.output[0].name
    assert not [n for n in encoder.graph.node if audio_in in n.input and n.op_type == "QuantizeLinear"]
    assert [n.op_type for n in decoder.graph.node if audio_out in n.output] != ["DequantizeLinear"]
    # the encoder rounds only its convolutions' inputs and outputs (its codes flip on every extra rounding); the
    # decoder also the ops between them (cpu_quantize.STAGE_OP_TYPES)
    assert report["graphs"]["encoder"]["op_types"] == ["Conv", "ConvTranspose"]
    assert "LeakyRelu" in report["graphs"]["decoder"]["op_types"]
    assert not _roundings_away_from_convolutions(encoder)
    assert _roundings_away_from_convolutions(decoder)
    assert 2 <= report["calibration"]["calibration_clips"] <= 6
    # each clip is streamed: a start step, steady steps and the flush, so more steps than clips
    assert report["graphs"]["encoder"]["calibration_feeds"] > report["calibration"]["calibration_clips"]
    fidelity = report["fidelity"]
    assert fidelity["int8_path"] == "INT8 encoder + INT8 decoder"
    assert len(fidelity["code_agreement"]) == model.config.n_codebooks
    assert fidelity["latent_snr_db"] > 20.0 and fidelity["int8_vs_fp32_output_snr_db"] > 20.0
    assert model.model_id == load_model_dir(step_model).model_id
    assert not [p for p in model_path.iterdir() if p.name.startswith(".")]


def test_cli_quantize_cpu_bad_calibration_leaves_model_untouched(step_model: Path, tmp_path: Path) -> None:
    model_path = _model_copy(step_model, tmp_path)
    before = dir_state(model_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("quantize", "--target", "cpu", "--model", str(model_path), "--calib", str(empty))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(f"error: {empty}: no files")
    assert dir_state(model_path) == before


def test_failure_after_quantization_restores_the_directory(step_model: Path, calib_folder: Path,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apucodec.calibration import cpu_quantize

    model_path = _model_copy(step_model, tmp_path)
    before = dir_state(model_path)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cpu_quantize.ModelDir, "save_manifest", fail)
    with pytest.raises(ApucodecError, match="cannot write the model directory"):
        cpu_quantize.quantize_cpu(model_path, calib_folder, clips=3, threads=1)
    assert dir_state(model_path) == before


def test_decoder_is_calibrated_on_the_dequantized_codes(step_model: Path, step_feeds: dict) -> None:
    """Decoder calibration inputs are the codebook sums of the streamed encoder's codes, in order, not latents."""
    from apucodec.calibration.streams import graph_stepper, stream
    from apucodec.contract.steps import frames_for_length
    from apucodec.runtime.onnx_step import onnx_step
    from apucodec.runtime.rvq import NumpyRVQ

    model = load_model_dir(step_model)
    rvq = NumpyRVQ(model.codebooks())
    clip = mixture(0.5, seed=1)                                # the first clip of `step_feeds`
    frames = frames_for_length(clip.size, model.hop)
    encoder = graph_stepper(model, "encoder.s16", onnx_step(_session(model.path_of("encoder.s16"))))
    latent = stream(encoder, clip[None], frames)               # [D, F]
    expected = rvq.dequantize(rvq.quantize(np.ascontiguousarray(latent.T))).T
    steps = -(-frames // 16)
    fed = np.concatenate([f["latent"][0] for f in step_feeds["decoder"][:steps]], axis=1)[:, :frames]
    np.testing.assert_allclose(fed, expected, atol=1e-6)
    assert snr_db(latent, fed) < 60.0                          # and they differ from the raw latent


def test_quark_config_uses_the_cores_and_the_chosen_minmse_mode() -> None:
    from apucodec.calibration.presets import build_qconfig, import_quark, preset

    quark_onnx = import_quark()
    config = build_qconfig(quark_onnx, preset("xint8"), "/tmp/unused", workers=3, minmse_mode="MostCommon")
    assert config.extra_options["CalibWorkerNum"] == 3
    assert config.extra_options["MinMSEModePof2Scale"] == "MostCommon"
    assert build_qconfig(quark_onnx, preset("a8w8"), "/tmp/unused").extra_options["CalibWorkerNum"] >= 1
    # ours by default (bounded memory), Quark's own choice on request
    assert build_qconfig(quark_onnx, preset("xint8"), "/tmp/unused").extra_options["MinMSEModePof2Scale"] == \
        "MostCommon"
    unset = build_qconfig(quark_onnx, preset("xint8"), "/tmp/unused", minmse_mode=None).extra_options
    assert unset.get("MinMSEModePof2Scale") != "MostCommon"
    with pytest.raises(ApucodecError, match="unknown MinMSE mode"):
        build_qconfig(quark_onnx, preset("xint8"), "/tmp/unused", minmse_mode="Fast")


def test_onnx_step_records_what_a_stepper_runs(tmp_path: Path) -> None:
    """onnx_step recording a stream's feeds yields the same feeds as threading the state by hand."""
    from apucodec.runtime.onnx_step import onnx_step

    step = 16
    _, session, signal, steps = _stepped_input(tmp_path, 5, seed=2, step=step)
    recorded: list = []
    recorder = onnx_step(session, recorded=recorded)
    state = np.zeros((1, 4), np.float32)
    bounds = np.array([0, step], np.float32)
    outs = []
    for i in range(5):
        out, state = recorder(signal[None, None, i * step:(i + 1) * step], state, bounds)
        outs.append(out)
    by_hand = list(stepped_feeds(session, steps, {"state": "next_state"}))
    assert len(recorded) == 5
    for ours, theirs in zip(recorded, by_hand, strict=True):
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name])
    np.testing.assert_array_equal(outs[-1], session.run(None, by_hand[-1])[0])


def test_quantize_target_npu_is_quantize_encoder(step_model: Path, calib_folder: Path, tmp_path: Path) -> None:
    model_path = _model_copy(step_model, tmp_path)
    result = invoke("quantize", "--target", "npu", "--model", str(model_path), "--calib", str(calib_folder),
                    "--steps", "4", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "calibration steps" in result.output          # plain progress lines when stderr is not a terminal
    assert "wrote" in result.output and "encoder.s16.npu-int8.onnx" in result.output
    assert load_model_dir(model_path).files["encoder.s16.npu-int8"].quantization.preset == "xint8"
    assert (model_path / "encoder.s16.npu-int8.onnx").is_file()


@pytest.mark.parametrize(("target", "option", "named"), [("npu", "--clips", "--steps"), ("cpu", "--steps", "--clips")])
def test_quantize_refuses_the_other_targets_option(step_model: Path, calib_folder: Path, tmp_path: Path,
                                                  target: str, option: str, named: str) -> None:
    """--clips (CPU clips) and --steps (NPU steps) count different things: one given to the other target is an
    error naming the right option, before anything is read or written."""
    model_path = _model_copy(step_model, tmp_path)
    before = dir_state(model_path)
    result = invoke("quantize", "--target", target, "--model", str(model_path), "--calib", str(calib_folder),
                    option, "4")
    assert result.exit_code != 0 and f"takes {named}" in result.output
    assert dir_state(model_path) == before


def test_quantize_encoder_rejects_bad_level_gains(step_model: Path, calib_folder: Path, tmp_path: Path) -> None:
    model_path = _model_copy(step_model, tmp_path)
    before = dir_state(model_path)
    result = invoke("quantize-encoder", "--model", str(model_path), "--calib", str(calib_folder),
                    "--level-gains", "0,loud")
    assert result.exit_code == 2 and "--level-gains" in result.output
    assert dir_state(model_path) == before


def test_audio_edge_nodes_end_at_the_nearest_convolution(step_model: Path) -> None:
    from apucodec.calibration.audio_edges import audio_edge_nodes

    model = load_model_dir(step_model)
    for stage in ("encoder", "decoder"):
        graph = onnx.load(str(model.path_of(step_role(stage, 16))))
        ops = {n.name: n.op_type for n in graph.graph.node}
        names = audio_edge_nodes(graph, stage)
        convs = [n for n in names if ops[n] == "Conv"]
        assert len(convs) == 1
        order = [n.name for n in graph.graph.node if n.op_type in ("Conv", "ConvTranspose")]
        assert convs[0] == (order[0] if stage == "encoder" else order[-1])   # graphs are topologically sorted
    with pytest.raises(ValueError, match="unknown stage"):
        audio_edge_nodes(graph, "rvq")



def _conv_gelu_conv_graph(channels: int = 8, length: int = 64) -> onnx.ModelProto:
    """Conv -> exact GELU as torch exports it (Div, Erf, Add, Mul, Mul) -> Conv."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal((channels, 1, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((channels, channels, 3)).astype(np.float32) / 4, "w2"),
             numpy_helper.from_array(np.array(np.sqrt(2.0), np.float32), "sqrt2"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one_f"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h"], name="conv1", kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Div", ["h", "sqrt2"], ["d"], name="gelu_div"),
             helper.make_node("Erf", ["d"], ["e"], name="gelu_erf"),
             helper.make_node("Add", ["e", "one_f"], ["a"], name="gelu_add"),
             helper.make_node("Mul", ["h", "a"], ["m"], name="gelu_mul"),
             helper.make_node("Mul", ["m", "half"], ["g"], name="gelu_half"),
             helper.make_node("Conv", ["g", "w2"], ["y"], name="conv2", kernel_shape=[3], pads=[1, 1])]
    graph = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, length])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, length])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_float_gelu_fuses_into_one_kernel_between_integer_convs(tmp_path: Path) -> None:
    """Kept float and written as one Gelu node, the GELU runs as one kernel between integer convolutions, with the
    same output as the five float nodes; quantized, the chain stays apart (Erf) with Q/DQ inside."""
    from apucodec.calibration.gelu_nodes import fuse_gelus, gelu_node_names

    model = _conv_gelu_conv_graph()
    names = gelu_node_names(model)
    assert names == ["gelu_div", "gelu_erf", "gelu_add", "gelu_mul", "gelu_half"]
    source = tmp_path / "gelu.onnx"
    onnx.save(model, source)
    feeds = [{"x": mixture(64 / RATE, seed=s)[:64].reshape(1, 1, 64).astype(np.float32)} for s in range(4)]
    chain, fused, split = (tmp_path / f"{n}.onnx" for n in ("float_chain", "float_gelu", "int8_gelu"))
    quantize_graph_cpu_int8(source, chain, iter(feeds), exclude_nodes=names)
    result = quantize_graph_cpu_int8(source, fused, iter(feeds), gelu_nodes=names)   # kept float, then fused
    quantize_graph_cpu_int8(source, split, iter(feeds))
    x = feeds[0]["x"]
    float_chain = _session(chain).run(None, {"x": x})[0]
    assert result.ops["com.microsoft:Gelu"] == 1 and "Erf" not in result.ops   # counted after the rewrite
    model = onnx.load(str(chain))
    assert fuse_gelus(model, names) == 1
    onnx.checker.check_model(model)
    used = {name for node in model.graph.node for name in node.input}
    assert {"sqrt2", "one_f", "half"}.isdisjoint(i.name for i in model.graph.initializer) and "h" in used
    ops_fused, ops_split = _ops_after_optimization(fused, tmp_path), _ops_after_optimization(split, tmp_path)
    assert ops_fused["Gelu"] == 1 and ops_fused["Erf"] == 0 and ops_fused["QLinearConv"] == 2
    assert ops_split["Gelu"] == 0 and ops_split["Erf"] == 1
    out = _session(fused).run(None, {"x": x})[0]
    assert np.allclose(out, float_chain, atol=1e-6)
    assert snr_db(_session(source).run(None, {"x": x})[0], out) > 25.0


def _ops_after_optimization(path: Path, tmp_path: Path) -> Counter[str]:
    optimized = tmp_path / f"{path.stem}.optimized.onnx"
    _session(path, optimized)
    return Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)


def test_gelu_node_names_skip_other_erf_uses() -> None:
    from apucodec.calibration.gelu_nodes import gelu_node_names

    model = _conv_gelu_conv_graph()
    del model.graph.node[5]                 # no trailing Mul by 0.5: not the GELU pattern
    model.graph.node[5].input[0] = "m"
    assert gelu_node_names(model) == []
