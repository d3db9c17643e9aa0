"""`apucodec bench` and the sequential/pipelined runs it compares, on the tiny model (no timed assertions)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.lanes import Lanes
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.tools.bench import run_bench
from apucodec.tools.bench_report import GRAPH_STAGES, STAGES
from apucodec.tools.bench_text import format_report
from tests.audio_factory import speech_like, tone
from tests.cli_helpers import CPU, assert_one_line_error, cli_modules_loaded, invoke
from tests.runtime_models import CPU_ONLY


@pytest.fixture(scope="module")
def codec(runtime_model):
    return CodecEngine.open(runtime_model, CPU_ONLY, warn=None)


def _clip(seconds: float) -> np.ndarray:
    return (speech_like(seconds) + 0.3 * tone(seconds, 220.0)).astype(np.float32)


def _overlaps(a, b) -> bool:
    return a.start < b.end and b.start < a.end


def test_sequential_lanes_give_the_same_output_and_never_overlap(codec):
    audio = _clip(4.0)
    pipelined, _ = codec.run_array(audio)
    sequential, result = codec.run_array(audio, overlap=False)
    np.testing.assert_array_equal(sequential, pipelined)
    timings = [t for t in result.timings if t.stage in STAGES]
    assert {t.stage for t in timings} == set(STAGES)
    for i, a in enumerate(timings):
        for b in timings[i + 1:]:
            assert not _overlaps(a, b), (a, b)  # one thread: no two stages at once


def test_sequential_lanes_propagate_a_failure_and_close_every_lane():
    closed = []

    def source():
        try:
            yield from range(5)
        finally:
            closed.append("source")

    def failing(items):
        try:
            for item in items:
                if item == 2:
                    raise ValueError("lane failed")
                yield item
        finally:
            closed.append("lane")

    seen = []
    with pytest.raises(ValueError, match="lane failed"):
        Lanes(overlap=False).run(source, [("x", failing)], seen.append)
    assert seen == [0, 1] and sorted(closed) == ["lane", "source"]


def _inside(step, items) -> bool:
    return any(item.start <= step.start and step.end <= item.end for item in items)


def test_run_bench_reports_every_stage_per_step(codec):
    audio = _clip(4.0)
    report = run_bench(codec, audio, model_label="tiny")
    assert report.audio_seconds == pytest.approx(4.0)
    sizes = codec.model.step_sizes("encoder")
    assert report.step_frames == max(sizes) and report.step_seconds == pytest.approx(max(sizes) * 512 / 44100)
    frames = -(-audio.size // codec.hop)
    for run in (report.sequential, report.pipelined):
        for stage in GRAPH_STAGES:
            stats = run.stages[stage]
            # one call per step: at least the steps the clip fills, and the same count in both runs
            assert stats.calls >= -(-frames // report.step_frames)
            assert stats.calls == report.sequential.stages[stage].calls
            assert 0 < stats.p50_ms <= stats.p95_ms
            # the steps are timed inside the stage's lane items: their sum cannot exceed the lane's busy time
            assert 0 < stats.graph_seconds <= stats.busy_seconds < run.wall_seconds
            items = [t for t in run.timings if t.stage == stage]
            assert all(_inside(t, items) for t in run.step_timings if t.stage == stage)
        assert run.steps == max(run.stages[s].calls for s in GRAPH_STAGES)
        rvq = run.stages["rvq"]
        assert rvq.graph_seconds is None and rvq.calls == len([t for t in run.timings if t.stage == "rvq"]) >= 2
    # the stages' busy times of the sequential run cannot add up to more than its wall time
    assert sum(report.share(s) for s in STAGES) <= 1.0
    assert report.pipelining_gain == pytest.approx(report.sequential.wall_seconds / report.pipelined.wall_seconds)
    assert report.bottleneck.stage in STAGES
    assert report.peak_rss_bytes is None or report.peak_rss_bytes > 10 * 2**20
    assert report.latency_ms == codec.model.manifest.streaming.algorithmic_latency[str(report.step_frames)]["ms"]
    # the graph stages' work comes from the manifest's FLOP counts of the step graphs that ran; rvq has none
    step = report.step_frames
    files = codec.model.files
    assert report.gflop_per_step == {"encoder": files[f"encoder.s{step}"].graph.gflop,
                                     "decoder": files[f"decoder.s{step}"].graph.gflop}
    seq = report.sequential.stages["encoder"]
    assert report.gflops("encoder") == pytest.approx(report.gflop_per_step["encoder"] * seq.calls
                                                     / seq.graph_seconds)
    assert report.gflops("rvq") is None
    assert report.clip_gflop() == pytest.approx(sum(report.gflop_per_step[s] * report.sequential.stages[s].calls
                                                    for s in GRAPH_STAGES))
    text = format_report(report)
    for fragment in ("4.00 s of generated audio", f"step graphs of {step} frames", "encoder  CPU",
                     "rvq      NumPy (CPU)", "decoder  CPU", "real-time factor", "pipelining gain", "peak RSS",
                     "placement:", "GFLOP/s", "work per step", "algorithmic latency"):
        assert fragment in text, text
    json.dumps(report.to_dict())  # everything in the report is plain data
    report.gflop_per_step = {}  # a graph without a FLOP count: no column values, no work line
    assert report.gflops("encoder") is None and "work per step" not in format_report(report)


def test_run_bench_on_less_than_one_step(codec):
    """The warm-up is one step of audio; a clip shorter than that still benchmarks (one padded step + flush)."""
    report = run_bench(codec, _clip(0.3))
    assert report.audio_seconds == pytest.approx(0.3)
    assert report.sequential.stages["encoder"].calls >= 1


def test_bench_cli_json_and_plot(runtime_model, tmp_path):
    pytest.importorskip("matplotlib")
    picture = tmp_path / "timeline.png"
    result = invoke("bench", "--model", str(runtime_model), "--seconds", "3", "--json", "--plot", str(picture), *CPU)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["audio_seconds"] == pytest.approx(3.0) and data["source"] == "generated"
    assert set(data["sequential"]["stages"]) == set(STAGES)
    assert data["step_frames"] == 8  # the checked-in model's largest step graphs
    for mode in ("sequential", "pipelined"):
        steps = [t["stage"] for t in data[mode]["step_timings"]]
        for stage in GRAPH_STAGES:
            assert steps.count(stage) == data[mode]["stages"][stage]["calls"] >= 1, steps
        assert {t["stage"] for t in data[mode]["timings"]} >= set(STAGES)
    assert data["placement"]["encoder"]["ran_on"] == "CPUExecutionProvider"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["timeline.png"]  # no temp file left beside it


def test_bench_cli_step_frames_picks_the_step_graphs(runtime_model):
    result = invoke("bench", "--model", str(runtime_model), "--seconds", "1", "--step-frames", "4", "--json", *CPU)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["step_frames"] == 4
    assert data["placement"]["encoder"]["graph"] == "encoder.s4.onnx"
    assert data["placement"]["decoder"]["graph"] == "decoder.s4.onnx"
    frames = -(-44100 // 512)
    assert data["sequential"]["stages"]["encoder"]["calls"] >= -(-frames // 4)  # 4-frame steps: many more calls


def test_bench_cli_on_an_input_file(runtime_model, tmp_path):
    clip = tmp_path / "in.wav"
    sf.write(clip, np.stack([_clip(3.0)] * 2, axis=1), 48000)  # stereo, 48 kHz: downmixed and resampled
    result = invoke("bench", "--model", str(runtime_model), "--input", str(clip), "--seconds", "2", *CPU)
    assert result.exit_code == 0, result.output
    assert f"2.00 s of {clip} audio" in result.stdout
    assert "downmixed to mono" in result.stdout and "resampled from 48000 Hz" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--input", "missing.wav"], "missing.wav"),
    (["--plot", "timeline.xyz"], "cannot write a .xyz picture"),
    (["--plot", "no_such_folder/t.png"], "does not exist"),
    (["--step-frames", "7"], "no encoder step graph of 7 frames"),
])
def test_bench_cli_bad_input_is_one_line(runtime_model, tmp_path, monkeypatch, args, fragment):
    if "--plot" in args:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    result = invoke("bench", "--model", str(runtime_model), "--seconds", "1", *args, *CPU)
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


def test_bench_cli_does_not_import_torch(runtime_model):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc, loaded = cli_modules_loaded("bench", "--model", str(runtime_model), "--seconds", "1", *CPU, env=env)
    assert proc.returncode == 0, proc.stderr
    assert loaded == [] and "pipelining gain" in proc.stdout


def test_graph_stages_on_one_processor_take_turns_in_the_pipelined_run(codec):
    """Both graph stages on the CPU EP: their runs never overlap (the lanes still do), see processor_turns."""
    _, result = codec.run_array(_clip(4.0))
    for timings in (result.timings, result.step_timings):  # lane items (blocks), and the step-graph calls in them
        encoder = [t for t in timings if t.stage == "encoder"]
        decoder = [t for t in timings if t.stage == "decoder"]
        assert len(encoder) >= 3 and len(decoder) >= 3
        assert not any(_overlaps(a, b) for a in encoder for b in decoder)


def test_processor_turns_are_shared_only_by_stages_on_the_same_ep():
    from apucodec.runtime.eps import CPU, VITISAI, WEBGPU
    from apucodec.runtime.placement import PlacementReport, StagePlacement, processor_turns

    def report(encoder_ep: str, decoder_ep: str) -> PlacementReport:
        return PlacementReport([StagePlacement("encoder", VITISAI, encoder_ep),
                                StagePlacement("rvq", "NumPy (CPU)", "NumPy (CPU)"),
                                StagePlacement("decoder", WEBGPU, decoder_ep)])

    shared = processor_turns(report(CPU, CPU))
    assert shared["encoder"] is shared["decoder"]
    apu = processor_turns(report(VITISAI, WEBGPU))
    assert apu["encoder"] is not apu["decoder"]
    half = processor_turns(report(VITISAI, CPU))
    assert half["encoder"] is not half["decoder"]


def test_sessions_do_not_spin_unless_asked():
    from apucodec.runtime.ort_options import session_options

    key = "session.intra_op.allow_spinning"
    assert session_options(SessionSettings(), False, None).get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError, match="does not have configuration"):  # unset: onnxruntime's default (spin)
        session_options(SessionSettings(spin=True), False, None).get_session_config_entry(key)
