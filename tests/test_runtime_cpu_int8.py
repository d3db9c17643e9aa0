"""The runtime picks the CPU INT8 step graphs (`apucodec quantize --target cpu`) when a stage runs on the CPU EP.

A tiny model (4- and 16-frame steps) is quantized once; the tests open it on the CPU EP and check the placement
(graph and reason), that the INT8 path's output stays close to the FP32 path's, and that --precision fp32 (or
--encoder fp32 for the encoder alone) gets the FP32 graphs back.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from apucodec.cli.main import cli
from apucodec.dsp.metrics import snr_db
from apucodec.errors import ApucodecError
from apucodec.model.directory import load_model_dir
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.eps import CPU, VITISAI
from apucodec.runtime.stage_plan import CPU_INT8_REASON, SessionSettings, choose_decoder_graph, choose_encoder_graph
from tests.audio_factory import mixture, speech_like
from tests.runtime_models import quantized_tiny

RATE = 44100
# INT8 path vs FP32 path output SNR on the tiny random-weight model: measured 33.0 dB (held-out clip in the
# quantize report) and 32.95-33.0 dB over 1.5-3 s mixtures and speech (6 calibration clips); the bound leaves room
# for other CPUs' kernels and calibration sets.
MIN_OUTPUT_SNR_DB = 20.0


@pytest.fixture(scope="module")
def cpu_int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")  # quantizing (and exporting) the model is the export side's work
    return quantized_tiny(tmp_path_factory.mktemp("runtime_cpu_int8"))


def _cpu_settings(**kwargs: str) -> SessionSettings:
    return SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1, **kwargs)


def test_graph_choice_on_each_ep(cpu_int8_model: Path) -> None:
    model = load_model_dir(cpu_int8_model)
    assert choose_encoder_graph(model, CPU, "auto", 16) == ("encoder.s16.cpu-int8", CPU_INT8_REASON)
    assert choose_decoder_graph(model, CPU, "auto", 16) == ("decoder.s16.cpu-int8", CPU_INT8_REASON)
    assert choose_encoder_graph(model, CPU, "fp32", 16)[0] == "encoder.s16"
    assert choose_decoder_graph(model, CPU, "fp32", 16) == ("decoder.s16", "forced by --precision fp32")
    # the live step has its CPU INT8 graphs too, quantized with the offline step's ranges (the same scales)
    assert choose_encoder_graph(model, CPU, "auto", 4) == ("encoder.s4.cpu-int8", CPU_INT8_REASON)
    assert choose_decoder_graph(model, CPU, "auto", 4)[0] == "decoder.s4.cpu-int8"
    import onnx
    from onnx import numpy_helper

    def scales(role: str) -> dict[str, np.ndarray]:
        graph = onnx.load(str(model.path_of(role))).graph
        return {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("_scale")}

    for stage in ("encoder", "decoder"):
        live, offline = scales(f"{stage}.s4.cpu-int8"), scales(f"{stage}.s16.cpu-int8")
        assert live.keys() == offline.keys() and len(live) > 10
        assert all(np.array_equal(live[k], offline[k]) for k in live)
    # the encoder's latent projection (its last Conv) stays float: no DequantizeLinear feeds the latent
    graph = onnx.load(str(model.path_of("encoder.s16.cpu-int8"))).graph
    producer = {o: n for n in graph.node for o in n.output}[graph.output[0].name]
    assert producer.op_type == "Conv" and not any(i.endswith("_DequantizeLinear_Output") for i in producer.input[1:])
    # not on the CPU EP: never the CPU INT8 graphs
    assert choose_encoder_graph(model, VITISAI, "auto", 16)[0] == "encoder.s16"
    assert choose_decoder_graph(model, "WebGpuExecutionProvider", "auto", 16)[0] == "decoder.s16"
    with pytest.raises(ApucodecError, match="decoder graph must be one of auto, fp32"):
        choose_decoder_graph(model, CPU, "int8", 16)


def test_codec_on_cpu_runs_int8_graphs_close_to_fp32(cpu_int8_model: Path) -> None:
    audio = mixture(1.5, seed=11).astype(np.float32)
    int8 = CodecEngine.open(cpu_int8_model, _cpu_settings(), warn=None)
    fp32 = CodecEngine.open(cpu_int8_model, _cpu_settings(encoder_graph="fp32", decoder_graph="fp32"), warn=None)
    for stage in ("encoder", "decoder"):
        placed = int8.placement.stage(stage)
        assert placed.graph == f"{stage}.s16.cpu-int8.onnx" and placed.graph_reason == CPU_INT8_REASON
        assert fp32.placement.stage(stage).graph == f"{stage}.s16.onnx"
    assert "cpu-int8" in int8.placement.format() and "VNNI integer kernels" in int8.placement.format()
    out_int8, _ = int8.run_array(audio)
    out_fp32, _ = fp32.run_array(audio)
    assert out_int8.shape == out_fp32.shape == audio.shape
    assert not np.array_equal(out_int8, out_fp32)              # really a different graph
    assert snr_db(out_fp32, out_int8) > MIN_OUTPUT_SNR_DB


def test_cli_precision_fp32_forces_fp32_graphs(cpu_int8_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.wav"
    sf.write(source, speech_like(1.0, seed=5), RATE)
    base = ["run", str(source), str(tmp_path / "out.wav"), "--model", str(cpu_int8_model), "--encoder-ep", "cpu",
            "--decoder-ep", "cpu", "--threads", "1", "--report"]
    auto = CliRunner().invoke(cli, base)
    assert auto.exit_code == 0, auto.output
    assert "graph encoder.s16.cpu-int8.onnx (CPU INT8 graph" in auto.output
    assert "graph decoder.s16.cpu-int8.onnx (CPU INT8 graph" in auto.output
    forced = CliRunner().invoke(cli, [*base, "--precision", "fp32"])
    assert forced.exit_code == 0, forced.output
    assert "graph encoder.s16.onnx (forced by --encoder fp32)" in forced.output
    assert "graph decoder.s16.onnx (forced by --precision fp32)" in forced.output
    assert "cpu-int8" not in forced.output
    encoder_only = CliRunner().invoke(cli, [*base, "--encoder", "fp32"])
    assert encoder_only.exit_code == 0, encoder_only.output
    assert "graph encoder.s16.onnx" in encoder_only.output and "graph decoder.s16.cpu-int8.onnx" in encoder_only.output


def test_a_model_without_cpu_int8_graphs_runs_fp32_on_the_cpu(cpu_int8_model: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(cpu_int8_model, plain)
    model = load_model_dir(plain)
    for stage in ("encoder", "decoder"):
        (plain / model.files.pop(f"{stage}.s16.cpu-int8").name).unlink()
    model.save_manifest()
    codec = CodecEngine.open(plain, _cpu_settings(), warn=None)
    assert codec.placement.stage("encoder").graph == "encoder.s16.onnx"
    assert codec.placement.stage("decoder").graph == "decoder.s16.onnx"


def _quiet(audio: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    return (audio * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def test_quiet_steps_run_on_the_fp32_graphs(cpu_int8_model: Path) -> None:
    """A -70 dBFS clip: under the default floor every encoder step runs in FP32, so the codes are the FP32 path's
    exactly; with the floor off (-inf) the INT8 encoder runs it and the codes differ. (The decoder judges its own
    INT8 output, which this random-weight model does not keep quiet: tests/test_int8_floor.py covers that side.)"""
    audio = _quiet(speech_like(1.5, seed=12), -70.0)
    guarded = CodecEngine.open(cpu_int8_model, _cpu_settings(), warn=None, stages=("encoder",))
    unguarded = CodecEngine.open(cpu_int8_model,
                                 SessionSettings(encoder_eps=("cpu",), threads=1, int8_floor_dbfs=-np.inf),
                                 warn=None, stages=("encoder",))
    fp32 = CodecEngine.open(cpu_int8_model, _cpu_settings(encoder_graph="fp32"), warn=None, stages=("encoder",))
    codes, result = guarded.encode_array(audio)
    codes_int8, result_int8 = unguarded.encode_array(audio)
    codes_fp32, _ = fp32.encode_array(audio)
    assert np.array_equal(codes, codes_fp32)
    assert not np.array_equal(codes_int8, codes_fp32)
    steps = result.steps
    assert f"encoder: {steps} of {steps} steps below -45 dBFS ran on the FP32 graph" in result.notes
    assert not any("FP32 graph" in note for note in result_int8.notes)


def test_loud_steps_stay_on_the_int8_graphs(cpu_int8_model: Path) -> None:
    audio = _quiet(mixture(1.5, seed=13), -15.0)
    guarded = CodecEngine.open(cpu_int8_model, _cpu_settings(), warn=None)
    unguarded = CodecEngine.open(cpu_int8_model, SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1,
                                                           int8_floor_dbfs=-np.inf), warn=None)
    out_guarded, result = guarded.run_array(audio)
    out_int8, _ = unguarded.run_array(audio)
    assert np.array_equal(out_guarded, out_int8)
    assert not any("FP32 graph" in note for note in result.notes)


def test_cli_int8_floor_option(cpu_int8_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "quiet.wav"
    sf.write(source, _quiet(speech_like(1.0, seed=5), -70.0), RATE)
    base = ["run", str(source), str(tmp_path / "out.wav"), "--model", str(cpu_int8_model), "--encoder-ep", "cpu",
            "--decoder-ep", "cpu", "--threads", "1"]
    plain = CliRunner().invoke(cli, base)
    assert plain.exit_code == 0, plain.output
    assert "FP32 graph" not in plain.output  # routine on ordinary input: shown with --report, not as a note
    guarded = CliRunner().invoke(cli, [*base, "--report"])
    assert guarded.exit_code == 0, guarded.output
    assert re.search(r"note: encoder: (\d+) of \1 steps below -45 dBFS ran on the FP32 graph", guarded.output)
    off = CliRunner().invoke(cli, [*base, "--int8-floor", "-inf"])
    assert off.exit_code == 0, off.output
    assert "FP32 graph" not in off.output
    bad = CliRunner().invoke(cli, [*base, "--int8-floor", "nan"])
    assert bad.exit_code != 0 and bad.output.strip().splitlines() == [
        "error: --int8-floor must be a level in dBFS (or -inf), not nan"]
