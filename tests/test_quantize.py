"""quantize-encoder: calibration clips streamed through the step graph, the Quark pass on a tiny model, fidelity
measured by streaming both graphs, NPU op check, bad inputs.

Everything runs on the session's tiny exported model and generated audio. The first `import quark.onnx` on a
machine compiles Quark's custom-op library (about a minute); every test shares apucodec's Quark cache
(~/.cache/apucodec/quark), so a CI run pays that once.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
from click.testing import CliRunner

from apucodec.calibration.clips import SILENCE_RMS, collect_clips, read_span
from apucodec.calibration.conv2d import conv1d_to_conv2d
from apucodec.calibration.step_nodes import bounds_nodes, state_nodes
from apucodec.calibration.streams import graph_stepper, record_feeds, stream
from apucodec.cli.main import cli
from apucodec.contract.npu_ops import check_npu_ops
from apucodec.contract.steps import step_role
from apucodec.errors import ApucodecError
from apucodec.model.checks import external_data_refs
from apucodec.model.directory import ModelDir, load_model_dir
from apucodec.runtime.onnx_step import onnx_step
from tests.audio_factory import chirp, mixture, speech_like, tone
from tests.cli_helpers import assert_one_line_error, invoke, modules_loaded
from tests.refusal_helpers import dir_state
from tests.tiny_models import export_on_one_thread

RATE = 44100
CALIB_SECONDS = 6.0
# The tiny checkpoint exported with an offline step of 16 frames (not the default 128): Quark keeps every
# activation of every calibration step in memory, so short steps keep these tests small and fast. The offline
# graph (the largest step) is the one quantized.
STEP = 16
INT8_ROLE = f"encoder.s{STEP}.npu-int8"
FP32_ROLE = f"encoder.s{STEP}"


@pytest.fixture(scope="module")
def calib_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three recordings of different material, one nested, one at 48 kHz stereo, plus a silent file and a non-audio
    file that calibration must skip."""
    folder = tmp_path_factory.mktemp("calib")
    (folder / "nested").mkdir()
    sf.write(folder / "music.wav", mixture(CALIB_SECONDS, seed=3), RATE)
    sf.write(folder / "nested" / "speech.flac", speech_like(CALIB_SECONDS, seed=4), RATE)
    n48 = int(CALIB_SECONDS * 48000)
    stereo = np.stack([chirp(CALIB_SECONDS, rate=48000)[:n48], tone(CALIB_SECONDS, 330, rate=48000)[:n48]], axis=1)
    sf.write(folder / "sweep48k.wav", stereo, 48000)
    sf.write(folder / "silence.wav", np.zeros(int(CALIB_SECONDS * RATE), np.float32), RATE)
    (folder / "notes.txt").write_text("not audio")
    return folder


@pytest.fixture(scope="module")
def step_model_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported at steps (4, STEP); read-only, like step_model_dir."""
    return export_on_one_thread(tiny_checkpoint, tmp_path_factory.mktemp("step_model"), step_frames=(4, STEP))


@pytest.fixture(scope="module")
def quantized_dir(step_model_dir: Path, calib_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the step model directory quantized once with the default preset through the CLI."""
    model = tmp_path_factory.mktemp("quantized") / "model"
    shutil.copytree(step_model_dir, model)
    result = CliRunner().invoke(cli, ["quantize-encoder", "--model", str(model), "--calib", str(calib_folder),
                                      "--steps", "6", "--seed", "3", "--threads", "1"])
    assert result.exit_code == 0, result.output
    return model


@pytest.fixture()
def model_copy(step_model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(step_model_dir, target)
    return target


def _step_samples(model: Path) -> int:
    """Audio samples per step of the offline encoder graph (the one quantize-encoder works on)."""
    m = load_model_dir(model)
    return m.files[FP32_ROLE].step_frames * m.hop


# --- calibration clips ---------------------------------------------------------------------------------------------

def test_clips_are_deterministic_spread_and_held_out(calib_folder: Path, step_model_dir: Path) -> None:
    n = _step_samples(step_model_dir)
    first = collect_clips(calib_folder, n, n, count=6, seed=11, rate=RATE)
    again = collect_clips(calib_folder, n, n, count=6, seed=11, rate=RATE)
    other = collect_clips(calib_folder, n, n, count=6, seed=12, rate=RATE)
    assert first.calibration_sources == again.calibration_sources
    assert first.evaluation_sources == again.evaluation_sources
    assert (first.calibration_sources + first.evaluation_sources) != (other.calibration_sources
                                                                         + other.evaluation_sources)
    assert len(first.calibration) == 6 and len(first.evaluation) >= 1
    assert not set(first.calibration_sources) & set(first.evaluation_sources)
    # round-robin over files: all three non-silent recordings contribute, the silent one never does
    used = {s.path.name for s in first.calibration_sources + first.evaluation_sources}
    assert used == {"music.wav", "speech.flac", "sweep48k.wav"}
    assert first.silent_skipped >= 1
    assert "notes.txt" not in used
    for clip in first.calibration + first.evaluation:
        assert clip.shape == (n,) and clip.dtype == np.float32
        assert np.sqrt(np.mean(clip.astype(np.float64) ** 2)) >= SILENCE_RMS


def test_a_file_shorter_than_a_clip_is_one_whole_clip(tmp_path: Path, step_model_dir: Path) -> None:
    n = _step_samples(step_model_dir)
    sf.write(tmp_path / "short.wav", tone(1.5 * n / RATE, 220), RATE)
    sf.write(tmp_path / "long.wav", speech_like(9 * n / RATE, seed=2), RATE)
    clips = collect_clips(tmp_path, 4 * n, n, count=3, seed=0, rate=RATE)
    lengths = {s.path.name: set() for s in clips.calibration_sources + clips.evaluation_sources}
    for s in clips.calibration_sources + clips.evaluation_sources:
        lengths[s.path.name].add(s.length)
    assert lengths["short.wav"] == {int(1.5 * n)}         # the whole file: a stream that ends mid-step
    assert lengths["long.wav"] == {4 * n}


@pytest.mark.parametrize("rate", [44100, 24000])
def test_read_span_matches_whole_file_resampling(calib_folder: Path, rate: int) -> None:
    """A span read by seeking into a 48 kHz stereo file equals the same span of the whole file downmixed and
    resampled to the model's rate (away from the span's edges, where the resampler sees less context)."""
    from apucodec.io.audio_read import read_audio

    whole, _ = read_audio(calib_folder / "sweep48k.wav", rate)
    start, length = 50_000, 40_000
    span = read_span(calib_folder / "sweep48k.wav", start, length, rate)
    interior = slice(500, length - 500)
    np.testing.assert_allclose(span[interior], whole[start:start + length][interior], atol=2e-3)


def test_read_span_zero_pads_past_the_end(calib_folder: Path) -> None:
    frames = sf.info(str(calib_folder / "music.wav")).frames
    span = read_span(calib_folder / "music.wav", frames - 1000, 4000, RATE)
    assert np.any(span[:900] != 0) and np.all(span[1100:] == 0)


def test_recorded_feeds_are_the_steps_of_a_stream(calib_folder: Path, step_model_dir: Path) -> None:
    """Calibration items are the FP32 graph's real step inputs: a zero state and a start bound on the first step,
    the previous step's next_state after it, the flush step's bounds counting down to the clip's end."""
    import onnxruntime as ort

    model = load_model_dir(step_model_dir)
    n = _step_samples(step_model_dir)
    clip = read_span(calib_folder / "music.wav", 10_000, 2 * n + 3000, RATE)
    session = ort.InferenceSession(str(model.path_of(FP32_ROLE)), providers=["CPUExecutionProvider"])
    (feeds,) = record_feeds(session, model, FP32_ROLE, [clip])
    frames = -(-clip.size // model.hop)
    delay = model.streaming("encoder").delay_samples // model.hop
    assert len(feeds) == -(-(frames + delay) // STEP)
    assert all(set(f) == {"audio", "state", "bounds"} for f in feeds)
    assert not feeds[0]["state"].any() and feeds[0]["bounds"][0] == 0
    np.testing.assert_array_equal(feeds[0]["audio"][0, 0], clip[:n])
    next_state = session.run(["next_state"], feeds[0])[0]
    np.testing.assert_array_equal(feeds[1]["state"], next_state)
    assert feeds[1]["bounds"][0] == STEP
    assert feeds[-1]["bounds"][1] == frames - (len(feeds) - 1) * STEP   # frames left from the flush step's start


def test_float_node_sets_of_a_step_graph(step_model_dir: Path) -> None:
    """What stays float: the mask arithmetic (bounds and constants only) and the state's data movement (every
    reader of `state`, and the Concat that writes `next_state`) — never a Conv or an activation."""
    graph = onnx.load(str(load_model_dir(step_model_dir).path_of(FP32_ROLE)))
    nodes = {n.name: n for n in graph.graph.node}
    mask, state = bounds_nodes(graph), state_nodes(graph)
    assert mask and state and not set(mask) & set(state)
    assert {nodes[n].op_type for n in mask} <= {"Gather", "Mul", "Add", "Max", "Min"}
    assert {nodes[n].op_type for n in state} == {"Slice", "Reshape", "Concat"}
    assert [nodes[n].output[0] for n in state if nodes[n].op_type == "Concat"] == ["next_state"]
    assert {n.name for n in graph.graph.node if "state" in n.input} <= set(state)
    assert {n.name for n in graph.graph.node if "bounds" in n.input} <= set(mask)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("empty", "no files"),
    ("not_audio", "no audio that libsndfile can read"),
    ("too_short", "no file holds one encoder step"),
    ("silent", "only near-silent audio"),
])
def test_bad_calibration_folders(case: str, message: str, tmp_path: Path, step_model_dir: Path) -> None:
    folder = tmp_path / "calib"
    if case != "missing":
        folder.mkdir()
    n = _step_samples(step_model_dir)
    if case == "not_audio":
        (folder / "a.wav").write_bytes(b"RIFF....not really")
        (folder / "b.txt").write_text("hello")
    elif case == "too_short":
        sf.write(folder / "short.wav", tone(0.5 * n / RATE), RATE)
    elif case == "silent":
        sf.write(folder / "quiet.wav", np.full(3 * n, 1e-5, np.float32), RATE)
    with pytest.raises(ApucodecError, match=message) as info:
        collect_clips(folder, 4 * n, n, count=4, rate=RATE)
    assert str(folder) in str(info.value)


# --- the CLI's bad inputs leave the model directory untouched ------------------------------------------------------

def _invoke(model: Path, calib: Path, *extra: str):
    return invoke("quantize-encoder", "--model", str(model), "--calib", str(calib), "--steps", "4", *extra)


def test_cli_empty_calibration_folder(model_copy: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    before = dir_state(model_copy)
    assert_one_line_error(_invoke(model_copy, empty), str(empty), "no files")
    assert dir_state(model_copy) == before


def test_cli_model_without_encoder(model_copy: Path, calib_folder: Path) -> None:
    (model_copy / f"{FP32_ROLE}.onnx").unlink()
    before = dir_state(model_copy)
    assert_one_line_error(_invoke(model_copy, calib_folder), f"{FP32_ROLE}.onnx", "missing")
    assert dir_state(model_copy) == before


def test_cli_encoder_sha256_mismatch(model_copy: Path, calib_folder: Path) -> None:
    with open(model_copy / f"{FP32_ROLE}.onnx", "ab") as fh:
        fh.write(b"\0")
    before = dir_state(model_copy)
    assert_one_line_error(_invoke(model_copy, calib_folder), f"{FP32_ROLE}.onnx", "sha256")
    assert dir_state(model_copy) == before


def test_cli_without_amd_quark(model_copy: Path, calib_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "quark", None)        # import quark -> ImportError, as when not installed
    monkeypatch.setitem(sys.modules, "quark.onnx", None)
    before = dir_state(model_copy)
    assert_one_line_error(_invoke(model_copy, calib_folder), "quark", "apucodec[quantize]")
    assert dir_state(model_copy) == before


def test_cli_quark_build_failure_is_one_line(model_copy: Path, calib_folder: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing first import of quark.onnx (its JIT g++ build, say) is reported, not dumped as a traceback."""
    import subprocess as sp

    import apucodec.calibration.presets as presets

    real_require = presets.require

    def broken(module: str, extra: str):
        if module == "quark.onnx":
            raise sp.CalledProcessError(1, ["ninja", "-v"])
        return real_require(module, extra)

    monkeypatch.setattr(presets, "require", broken)
    before = dir_state(model_copy)
    assert_one_line_error(_invoke(model_copy, calib_folder), "amd-quark failed to initialise", "g++")
    assert dir_state(model_copy) == before


# --- the Quark pass --------------------------------------------------------------------------------------------------

def test_quantized_encoder_written_and_recorded(quantized_dir: Path, step_model_dir: Path) -> None:
    from apucodec.runtime.eps import VITISAI
    from apucodec.runtime.stage_plan import choose_encoder_graph

    model = load_model_dir(quantized_dir)                   # verifies every sha256, the new file's included
    assert step_role("encoder", STEP, "npu-int8") == INT8_ROLE
    entry = model.files[INT8_ROLE]
    fp32 = model.files[FP32_ROLE]
    assert entry.name == f"{INT8_ROLE}.onnx" and entry.preset == "xint8" and entry.format == "QDQ"
    assert entry.precision == "npu-int8"
    for field in ("stage", "step_frames", "state_size", "horizon_frames", "inputs", "outputs"):
        assert getattr(entry, field) == getattr(fp32, field), field
    assert model.step_graph("encoder", STEP, "npu-int8").name == entry.name
    assert model.step_sizes("encoder") == [4, STEP]          # the INT8 graph is not a new step size
    # the runtime picks it on the NPU, the FP32 graph on the CPU
    assert choose_encoder_graph(model, VITISAI, "auto", STEP)[0] == INT8_ROLE
    assert entry.graph.opset == 17 and entry.graph.ops["QuantizeLinear"] > 0
    # the same convolutions in INT8: the same FLOP count as the FP32 graph
    assert entry.graph.gflop == pytest.approx(fp32.graph.gflop, rel=1e-3)
    assert model.model_id == load_model_dir(step_model_dir).model_id   # .apc files stay decodable
    # the FP32 graph Quark read keeps its weights in the shared file; the INT8 graph Quark wrote carries its own
    assert fp32.external_data == ["encoder.fp32.weights"] and not entry.external_data
    assert not external_data_refs(model.path_of(INT8_ROLE))
    q = entry.quantization
    assert q.source == FP32_ROLE and q.preset == "xint8" and q.calibration["seed"] == 3
    # 6 steps = the 5 steps of one 4-step clip (start, steady, flush) + the first step of a second clip; the
    # clips drawn beyond those are not streamed and not counted
    assert q.calibration["steps"] == 6 and q.calibration["calibration_clips"] == 2
    assert q.calibration["evaluation_clips"] >= 1
    assert q.calibration["files_used"] == 2              # seed 3: sweep48k + speech, held out: sweep48k
    assert q.quark_version.startswith("0.13")
    assert q.opset == 17 and q.custom_ops is None
    fp32_graph = onnx.load(str(model.path_of(FP32_ROLE)))
    assert q.float_nodes["bounds_mask_arithmetic"] == len(bounds_nodes(fp32_graph)) > 0
    assert q.float_nodes["state_data_movement"] == len(state_nodes(fp32_graph)) > 0
    assert q.seconds["quantize"] > 0 and q.seconds["total"] >= q.seconds["quantize"]
    fidelity = q.fidelity
    assert fidelity.evaluation_steps >= 5                 # a whole clip streamed: start, steady and flush steps
    assert len(fidelity.code_agreement) == model.config.n_codebooks
    assert all(0.0 <= a <= 1.0 for a in fidelity.code_agreement)
    assert fidelity.latent_snr_db > 15.0                 # an INT8 encoder, not a broken one
    assert fidelity.latent_snr_db_edges > 15.0           # ...at the stream's ends too: the masks stayed exact
    assert fidelity.session["graph_optimization"] == "ORT_ENABLE_ALL"
    assert set(fidelity.e2e_snr_db) == {"fp32", "int8", "delta"}
    assert q.npu_ops["ready"] and q.npu_ops["not_listed"] == []
    assert q.npu_ops["op_counts"]["Conv"] > 0 and sum(q.npu_ops["float_nodes"].values()) > 0
    assert not any(p.name.startswith(".quantize-") for p in quantized_dir.iterdir())
    assert not (quantized_dir / "quantized_info.csv").exists() and not Path("quantized_info.csv").exists()


def _streamed_latent(model: ModelDir, path: Path, audio: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return stream(graph_stepper(model, FP32_ROLE, onnx_step(session)), audio[None])


def test_quantized_encoder_is_qdq_and_streams_on_plain_cpu_ep(quantized_dir: Path) -> None:
    model = load_model_dir(quantized_dir)
    graph = onnx.load(str(model.path_of(INT8_ROLE)))
    ops = {node.op_type for node in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert all(node.domain in ("", "ai.onnx") for node in graph.graph.node)
    # the bounds-mask arithmetic stayed in float: no Q/DQ pair sits on any of its inputs
    dq_outputs = {o for n in graph.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    mask_nodes = set(bounds_nodes(onnx.load(str(model.path_of(FP32_ROLE)))))
    kept = [n for n in graph.graph.node if n.name in mask_nodes]
    assert len(kept) == len(mask_nodes)
    assert not any(i in dq_outputs for n in kept for i in n.input)
    # the packed state is not squeezed through one int8 scale: no Q on `state`, no DQ making `next_state`
    assert not any(n.op_type == "QuantizeLinear" and "state" in n.input for n in graph.graph.node)
    assert "next_state" not in dq_outputs
    # 2.3 steps of a tone, streamed from zero state with the runtime's Stepper, flush included
    n = int(2.3 * STEP * model.hop)
    x = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 440 / RATE)).astype(np.float32)
    latent_q = _streamed_latent(model, model.path_of(INT8_ROLE), x)
    latent = _streamed_latent(model, model.path_of(FP32_ROLE), x)
    assert latent_q.shape == latent.shape == (model.config.latent_dim, -(-n // model.hop))
    assert not np.array_equal(latent_q, latent)             # really quantized...
    assert np.corrcoef(latent_q.ravel(), latent.ravel())[0, 1] > 0.95   # ...and still the same encoder


def test_failed_manifest_write_restores_previous_state(quantized_dir: Path, calib_folder: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from apucodec.model.directory import ModelDir

    model = tmp_path / "model"
    shutil.copytree(quantized_dir, model)
    before = dir_state(model)

    def refuse(self: ModelDir) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ModelDir, "save_manifest", refuse)
    from apucodec.calibration.quantize import quantize_encoder

    with pytest.raises(ApucodecError, match="No space left on device"):
        quantize_encoder(model, calib_folder, preset_name="a8w8", steps=4, threads=1)
    assert dir_state(model) == before                       # the earlier INT8 graph is back in place


def test_ctrl_c_during_calibration_leaves_nothing(model_copy: Path, calib_folder: Path) -> None:
    """A real SIGINT in the middle of Quark's calibration pass (which Quark itself turns into a RuntimeError) ends
    as KeyboardInterrupt, with the model directory untouched and no staging folder left."""
    import os
    import signal

    from apucodec.calibration.quantize import quantize_encoder

    before = dir_state(model_copy)
    seen = []

    def interrupt(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 3:
            os.kill(os.getpid(), signal.SIGINT)

    # Under a shell that started this run in the background SIGINT arrives ignored; act as a terminal would.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            quantize_encoder(model_copy, calib_folder, steps=4, on_step=interrupt, threads=1)
        handler_after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(seen) == 3 and all(total == 4 for _, total in seen)   # progress counts the calibration steps
    assert dir_state(model_copy) == before
    assert not [p for p in model_copy.iterdir() if p.is_dir()]   # no staging folder left behind
    assert handler_after is signal.default_int_handler   # quantization restored the handler it found


@pytest.mark.parametrize("preset_name", ["a8w8", "a16w8"])
def test_other_int8_presets_run_on_plain_cpu_ep(preset_name: str, model_copy: Path, calib_folder: Path) -> None:
    from apucodec.calibration.quantize import quantize_encoder

    result = quantize_encoder(model_copy, calib_folder, preset_name=preset_name, steps=4, seed=1, threads=1)
    manifest = json.loads((model_copy / "manifest.json").read_text())
    assert manifest["files"][INT8_ROLE]["quantization"]["preset"] == preset_name
    assert result.custom_op_domains == []
    graph = onnx.load(str(result.path))
    q_domains = {n.domain for n in graph.graph.node if n.op_type == "QuantizeLinear"}
    # int16 activations use ONNX Runtime's com.microsoft Q/DQ at opset 17; both load without extra libraries
    assert q_domains == ({"com.microsoft"} if preset_name == "a16w8" else {""})
    ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert result.fidelity.latent_snr_db > 15.0


def test_bf16_custom_ops_are_recorded_and_registered_without_torch(model_copy: Path, calib_folder: Path) -> None:
    """The BF16 preset emits com.amd.quark ops: the manifest says so, a plain session refuses the graph, and a
    torch-free process can still open it through register_custom_ops."""
    from apucodec.calibration.quantize import quantize_encoder

    result = quantize_encoder(model_copy, calib_folder, preset_name="bf16", steps=4, threads=1)
    manifest = json.loads((model_copy / "manifest.json").read_text())
    assert manifest["files"][INT8_ROLE]["quantization"]["custom_ops"]["domains"] == ["com.amd.quark"]
    assert manifest["files"][INT8_ROLE]["custom_op_domains"] == ["com.amd.quark"]
    with pytest.raises(Exception, match="com.amd.quark"):
        ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    probe = (
        "import numpy as np, onnxruntime as ort\n"
        "from apucodec.calibration.custom_ops import register_custom_ops\n"
        "so = ort.SessionOptions()\n"
        f"register_custom_ops(so, ['com.amd.quark'])\n"
        f"s = ort.InferenceSession({str(result.path)!r}, so, providers=['CPUExecutionProvider'])\n"
        "s.run(None, {i.name: np.zeros(i.shape, np.float32) for i in s.get_inputs()})\n"
        "print('ok')\n"
    )
    done, loaded = modules_loaded(probe, watch=("torch", "quark"))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    assert loaded == []


# --- Conv1d -> Conv2d(H=1) -------------------------------------------------------------------------------------------

def test_conv2d_rewrite_is_exact(step_model_dir: Path, calib_folder: Path) -> None:
    """Every Conv of the step graph becomes Unsqueeze -> Conv2d(H=1) -> Squeeze; on a real step (mid-stream state,
    bounds) latent and next state are unchanged."""
    model = load_model_dir(step_model_dir)
    original = onnx.load(str(model.path_of(FP32_ROLE)))
    rewritten = conv1d_to_conv2d(original)
    convs = [n for n in rewritten.graph.node if n.op_type == "Conv"]
    weights = {i.name: i for i in rewritten.graph.initializer}
    assert len(convs) == sum(n.op_type == "Conv" for n in original.graph.node)
    assert all(len(weights[n.input[1]].dims) == 4 and weights[n.input[1]].dims[2] == 1 for n in convs)
    assert [i.name for i in rewritten.graph.input] == [i.name for i in original.graph.input]
    a = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    clip = read_span(calib_folder / "music.wav", 0, 2 * _step_samples(step_model_dir), RATE)
    (feeds,) = record_feeds(a, model, FP32_ROLE, [clip])
    for ya, yb in zip(a.run(None, feeds[1]), b.run(None, feeds[1]), strict=True):
        assert ya.shape == yb.shape
        np.testing.assert_allclose(yb, ya, rtol=1e-4, atol=1e-5 * float(np.abs(ya).max()))


def test_conv2d_rewrite_leaves_other_ops_in_3d() -> None:
    """Ops that depend on the rank (here InstanceNormalization) keep their 3-D input: only the Conv is lifted."""
    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 8])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 6])
    w = onnx.numpy_helper.from_array(np.random.default_rng(0).standard_normal((2, 2, 3)).astype(np.float32), "w")
    scale = onnx.numpy_helper.from_array(np.ones(2, np.float32), "scale")
    bias = onnx.numpy_helper.from_array(np.zeros(2, np.float32), "bias")
    nodes = [h.make_node("InstanceNormalization", ["x", "scale", "bias"], ["n"], name="norm"),
             h.make_node("Conv", ["n", "w"], ["y"], name="conv", kernel_shape=[3])]
    model = h.make_model(h.make_graph(nodes, "g", [x], [y], [w, scale, bias]), opset_imports=[h.make_opsetid("", 17)])
    rewritten = conv1d_to_conv2d(model)
    assert [n.op_type for n in rewritten.graph.node] == ["InstanceNormalization", "Unsqueeze", "Conv", "Squeeze"]
    data = np.random.default_rng(1).standard_normal((1, 2, 8)).astype(np.float32)
    ya, yb = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": data})[0]
              for m in (model, rewritten))
    np.testing.assert_allclose(yb, ya, rtol=1e-5, atol=1e-6)


def test_cli_conv2d_option_quantizes_the_rewritten_graph(model_copy: Path, calib_folder: Path) -> None:
    # a8w8: the rewrite is what is tested, and its calibration is ~10x cheaper than xint8's MinMSE search
    result = _invoke(model_copy, calib_folder, "--conv2d", "--preset", "a8w8", "--threads", "1")
    assert result.exit_code == 0, result.output
    model = load_model_dir(model_copy)
    graph = onnx.load(str(model.path_of(INT8_ROLE)))
    assert {"Unsqueeze", "Squeeze"} <= {n.op_type for n in graph.graph.node}
    q = model.files[INT8_ROLE].quantization
    assert q.conv2d is True
    assert set(q.npu_ops["conv_kernels"]) == {"2d"}
    assert q.fidelity.latent_snr_db > 15.0


# --- NPU op check ----------------------------------------------------------------------------------------------------

def test_npu_op_check_flags_ops_outside_the_lists() -> None:
    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 8])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 8])
    w = onnx.numpy_helper.from_array(np.ones((2, 2, 1), np.float32), "w")
    s = onnx.numpy_helper.from_array(np.array(0.5, np.float32), "s")
    z = onnx.numpy_helper.from_array(np.array(0, np.int8), "z")
    reps = onnx.numpy_helper.from_array(np.array([1, 1, 1], np.int64), "reps")
    nodes = [
        h.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        h.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        h.make_node("Conv", ["xd", "w"], ["c"], name="bare_conv"),            # relies on default attributes
        h.make_node("LeakyRelu", ["c"], ["r"]),
        h.make_node("Hardmax", ["r"], ["t"]),  # on no INT8 list (Tile was, in Ryzen AI 1.5's XINT8 column)
        h.make_node("ExtendedQuantizeLinear", ["t"], ["y"], domain="com.amd.quark"),
    ]
    graph = h.make_graph(nodes, "g", [x], [y], [w, s, z, reps])
    report = check_npu_ops(h.make_model(graph))
    assert "QuantizeLinear" not in report.op_counts and "DequantizeLinear" not in report.op_counts
    assert report.not_listed == ["Hardmax", "com.amd.quark:ExtendedQuantizeLinear"]
    assert not report.ready
    assert report.conv_default_attributes == ["bare_conv"]
    assert report.conv_rank == {"1d": 1}                     # from the weight's rank, no kernel_shape given
    assert any("Hardmax" in line for line in report.lines())


def test_int8_lists_follow_the_preset_and_list_sub():
    """A step graph's Sub (older bounds masks) is on Ryzen AI 1.5's INT8 columns for every preset; ConvTranspose is
    on A8W8/A16W8 but not XINT8, so the preset decides."""
    from apucodec.contract.npu_ops import RYZEN_AI_15_INT8, int8_check_counts

    for preset_name in ("xint8", "a8w8", "a16w8"):
        assert int8_check_counts({"Sub": 17, "Conv": 30}, preset_name).ready
    xint8 = int8_check_counts({"ConvTranspose": 1}, "xint8")
    a8w8 = int8_check_counts({"ConvTranspose": 1}, "a8w8")
    assert RYZEN_AI_15_INT8 not in xint8.sources["ConvTranspose"] and RYZEN_AI_15_INT8 in a8w8.sources["ConvTranspose"]


def test_every_encoder_step_gets_an_npu_graph(quantized_dir):
    """The NPU runs the live step too: without its own INT8 graph the Vitis AI EP would compile the FP32 one to BF16,
    whose op list lacks LeakyRelu. quantize-encoder's default (--step-frames all) quantizes each encoder step."""
    model = load_model_dir(quantized_dir)
    steps = model.step_sizes("encoder")
    assert len(steps) == 2
    for frames in steps:
        graph = model.step_graph("encoder", frames, "npu-int8")
        assert graph is not None and graph.state_size == model.streaming("encoder").state_size
