"""Stage workers: a stage's session in its own process (same or another Python), looking exactly like an
in-process session to the engine; deaths and hangs end the run with one line; nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apucodec.errors import ApucodecError
from apucodec.model.directory import file_entry, load_model_dir
from apucodec.runtime import CodecEngine, SessionSettings
from apucodec.runtime.sessions import open_stage_session
from apucodec.runtime.workers.plan import parse_worker_options, resolve_workers
from apucodec.runtime.workers.process import how_it_ended
from tests.audio_factory import speech_like, tone
from tests.refusal_helpers import writing_into

CPU_ONLY = {"encoder_eps": ("cpu",), "decoder_eps": ("cpu",), "threads": 1}
SECOND_VENV = os.environ.get("APUCODEC_TEST_WORKER_PYTHON")


def _audio(seconds: float) -> np.ndarray:
    return (speech_like(seconds) + 0.3 * tone(seconds, 220.0)).astype(np.float32)


def test_encoder_in_a_worker_gives_the_in_process_codes(runtime_model):
    x = _audio(3.0)
    local = CodecEngine.open(runtime_model, SessionSettings(**CPU_ONLY), warn=None)
    worker = CodecEngine.open(runtime_model, SessionSettings(**CPU_ONLY, workers={"encoder": "self"}), warn=None)
    try:
        a, _ = local.encode_array(x)
        b, result = worker.encode_array(x)
        assert np.array_equal(a, b)
        enc = result.placement.stage("encoder")
        assert enc.runtime["worker"] and enc.runtime["pid"] != os.getpid() and enc.ran_on == "CPUExecutionProvider"
        assert enc.node_counts and "in worker pid" in result.placement.format()
        assert "encoder CPU (worker)" in result.summary()
        ya, _ = local.run_array(x)
        yb, _ = worker.run_array(x)
        assert np.array_equal(ya, yb)
    finally:
        worker.sessions["encoder"].close()


def _two_in_two_out(path: Path) -> None:
    """A static graph shaped like the step graphs: (audio, state) -> (latent, next_state)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["audio", "two"], ["latent"]), helper.make_node("Add", ["state", "one"],
                                                                                   ["next_state"])],
        "step", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, 8]),
                 helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, [1, 1, 8]),
         helper.make_tensor_value_info("next_state", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]), helper.make_tensor("one", TensorProto.FLOAT, [],
                                                                                      [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # loadable by an older onnxruntime in a worker
    onnx.save(model, path)


@pytest.mark.parametrize("workers", [{}, {"encoder": "self"}], ids=["in-process", "worker"])
def test_run_feeds_on_a_multi_input_graph(runtime_model, tmp_path, workers):
    path = tmp_path / "model"
    shutil.copytree(runtime_model, path)
    _two_in_two_out(path / "encoder.s8.onnx")  # the offline step graph's file, replaced by a small two-in graph
    model = load_model_dir(path, verify=False)
    fresh = file_entry(path / "encoder.s8.onnx", "encoder.s8")
    model.files["encoder.s8"] = replace(model.files["encoder.s8"], sha256=fresh.sha256, bytes=fresh.bytes)
    model.save_manifest()
    model = load_model_dir(path)
    settings = SessionSettings(**CPU_ONLY, workers=workers)
    session = open_stage_session(model, "encoder", settings, {"audio": (1, 1, 8), "state": (1, 3)}, warn=None)
    try:
        assert session.inputs == {"audio": (1, 1, 8), "state": (1, 3)}
        assert session.outputs == ["latent", "next_state"]
        audio, state = np.arange(8, dtype=np.float32).reshape(1, 1, 8), np.ones((1, 3), np.float32)
        for _ in range(2):  # the step buffer is reused: the second step must not see the first's values
            out = session.run_feeds({"audio": audio, "state": state})
            assert np.array_equal(out["latent"], 2 * audio) and np.array_equal(out["next_state"], state + 1)
            audio, state = audio + 1, out["next_state"]
        with pytest.raises(ApucodecError, match="input"):
            session.run_feeds({"audio": audio})  # a missing input: one line, never a crash in the worker
        with pytest.raises(ApucodecError, match="expected one input"):
            open_stage_session(model, "encoder", settings, (1, 1, 8), warn=None)
    finally:
        if hasattr(session, "close"):
            session.close()


def test_a_hung_worker_is_stopped_with_one_line(runtime_model):
    settings = SessionSettings(**CPU_ONLY, workers={"encoder": "self"}, worker_timeout=1.0)
    codec = CodecEngine.open(runtime_model, settings, warn=None)
    session = codec.sessions["encoder"]
    pid = session.placement.runtime["pid"]
    os.kill(pid, signal.SIGSTOP)  # alive but never answers
    try:
        with pytest.raises(ApucodecError, match=rf"^encoder worker \(pid {pid}, .*\) hung: no answer within 1 s; "
                                                r"killed$"):
            codec.encode_array(_audio(2.0))
    finally:
        session.close()
    assert session.worker.proc.poll() is not None  # nothing left running


def test_a_worker_without_numpy_or_onnxruntime_says_so(runtime_model):
    bare = shutil.which("python3.11", path="/usr/bin") or "/usr/bin/python3"
    probe = subprocess.run([bare, "-E", "-c", "import onnxruntime"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{bare} has onnxruntime")
    with pytest.raises(ApucodecError, match=r"encoder worker \(pid \d+, .*\): cannot import (numpy|onnxruntime) in"):
        CodecEngine.open(runtime_model, SessionSettings(**CPU_ONLY, workers={"encoder": bare}), warn=None)


def test_worker_plan_sources_and_errors(tmp_path, monkeypatch):
    assert parse_worker_options(["encoder=self", "decoder=none"]) == {"encoder": "self", "decoder": "none"}
    assert parse_worker_options([f"decoder={sys.executable}"]) == {"decoder": str(Path(sys.executable).absolute())}
    with pytest.raises(ApucodecError, match="expected STAGE=PYTHON"):
        parse_worker_options(["encoder"])
    with pytest.raises(ApucodecError, match="unknown stage 'rvq'"):
        parse_worker_options(["rvq=self"])
    with pytest.raises(ApucodecError, match="no such Python interpreter"):
        parse_worker_options([f"encoder={tmp_path / 'nope' / 'python'}"])
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"workers": {"encoder": "self", "decoder": "self"}}))
    manifest = {"workers": {"encoder": sys.executable}}
    # the command line wins over the config file; "none" keeps a stage in-process; a manifest never names a program
    assert resolve_workers({"decoder": "none"}, manifest, config) == {"encoder": "self"}
    assert resolve_workers({}, manifest, tmp_path / "absent.json") == {}
    config.write_text("{not json")
    with pytest.raises(ApucodecError, match="unreadable JSON config"):
        resolve_workers({}, None, config)
    assert how_it_ended(-9) == "killed by SIGKILL" and how_it_ended(3) == "exited with status 3"


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def test_sigkill_of_a_worker_mid_run_ends_the_run_with_one_line(runtime_model, tmp_path):
    clip = tmp_path / "in.wav"
    sf.write(clip, _audio(30.0), 44100)
    out = tmp_path / "out.wav"
    cmd = [sys.executable, "-m", "apucodec", "run", str(clip), str(out), "--model", str(runtime_model),
           "--encoder-ep", "cpu", "--decoder-ep", "cpu", "--threads", "1", "--worker", "encoder=self"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline, worker = time.monotonic() + 120, None
    while worker is None and time.monotonic() < deadline and proc.poll() is None:
        kids = _children(proc.pid)
        worker = kids[0] if kids else None
        time.sleep(0.05)
    assert worker is not None, proc.communicate()
    # mid-run: once the (unnamed) output file is open the lanes are running
    while time.monotonic() < deadline and not writing_into(proc.pid, tmp_path) and proc.poll() is None:
        time.sleep(0.02)
    os.kill(worker, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"error: encoder worker (pid {worker}, ") and "died: killed by SIGKILL" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]  # no output, no temp file


@pytest.mark.skipif(not SECOND_VENV, reason="APUCODEC_TEST_WORKER_PYTHON (the second venv, set by .ci/run) unset")
def test_encoder_under_another_onnxruntime_with_the_decoder_on_webgpu(runtime_model, tmp_path):
    """CI: the encoder in a worker under onnxruntime 1.23 (numpy 1.26), the decoder on the WebGPU plugin (lavapipe)
    in this process's onnxruntime: codes bit-identical to the in-process encoder, both versions in the report."""
    import onnxruntime as ort

    pytest.importorskip("onnxruntime_ep_webgpu")  # the webgpu extra (installed in CI)

    clip = tmp_path / "in.wav"
    sf.write(clip, _audio(3.0), 44100)
    env = {**os.environ, "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "1", "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "apucodec"]
    common = ["--model", str(runtime_model), "--encoder-ep", "cpu", "--threads", "1"]

    def apucodec(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*base, *args, *common], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    apucodec("encode", str(clip), str(tmp_path / "local.apc"))
    apucodec("encode", str(clip), str(tmp_path / "worker.apc"), "--worker", f"encoder={SECOND_VENV}")
    from apucodec.io.apc_reader import read_apc

    local, worker = read_apc(tmp_path / "local.apc")[1], read_apc(tmp_path / "worker.apc")[1]
    assert np.array_equal(local, worker)
    run = apucodec("run", str(clip), str(tmp_path / "out.wav"), "--worker", f"encoder={SECOND_VENV}",
                   "--decoder-ep", "webgpu", "--report")
    worker_ort = subprocess.run([SECOND_VENV, "-c", "import onnxruntime; print(onnxruntime.__version__)"],
                                capture_output=True, text=True, check=True).stdout.strip()
    assert worker_ort.startswith("1.23.") and worker_ort != ort.__version__
    encoder = next(line for line in run.stdout.splitlines() if line.strip().startswith("encoder "))
    decoder = next(line for line in run.stdout.splitlines() if line.strip().startswith("decoder "))
    assert f"onnxruntime {worker_ort} in worker pid" in encoder
    assert "ran on WebGpu" in decoder and f"onnxruntime {ort.__version__} in-process" in decoder


def test_decoder_on_the_webgpu_plugin_inside_a_worker(runtime_model, monkeypatch):
    """Plugin EPs are registered in the worker's own onnxruntime: the decoder can run on WebGPU there."""
    monkeypatch.setenv("ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER", "1")  # read by the worker at its registration
    warnings: list[str] = []
    worker = CodecEngine.open(runtime_model, SessionSettings(encoder_eps=("cpu",), decoder_eps=("webgpu",), threads=1,
                                                        workers={"decoder": "self"}), warn=warnings.append)
    try:
        decoder = worker.placement.stage("decoder")
        if decoder.ran_on != "WebGpuExecutionProvider":
            pytest.skip(f"no WebGPU adapter in the worker: {decoder.fallback_reason}")
        assert decoder.runtime["worker"] and decoder.node_counts == {"WebGpuExecutionProvider":
                                                                     sum(decoder.node_counts.values())}
        x = _audio(1.0)
        local = CodecEngine.open(runtime_model, SessionSettings(**CPU_ONLY), warn=None)
        a, _ = worker.run_array(x)
        b, _ = local.run_array(x)
        assert np.abs(a - b).max() < 1e-4 and not warnings
    finally:
        worker.sessions["decoder"].close()
