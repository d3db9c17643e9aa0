"""`apucodec run / encode / decode` as a user runs them: outputs, summary line, and every bad input ending in one
clear line, a non-zero exit and no partial output file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.audio_factory import speech_like, tone
from tests.cli_helpers import CPU, assert_one_line_error, cli_modules_loaded, invoke, modules_loaded
from tests.refusal_helpers import listing, writing_into


@pytest.fixture()
def clip(tmp_path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(path, speech_like(2.0) + 0.3 * tone(2.0, 220.0), 44100)
    return path


def test_run_encode_decode(runtime_model, clip, tmp_path):
    run = invoke("run", str(clip), str(tmp_path / "run.wav"), *CPU, "--report", model=runtime_model)
    assert run.exit_code == 0, run.output
    summary = run.stdout.splitlines()[0]
    for fragment in ("run: 2.00 s of audio", "RTF", "kbps (4 codebooks)", "encoder CPU", "rvq NumPy (CPU)",
                     "decoder CPU", str(runtime_model)):
        assert fragment in summary, summary
    assert "placement:" in run.stdout and "nodes: CPU" in run.stdout

    enc = invoke("encode", str(clip), str(tmp_path / "x.apc"), *CPU, model=runtime_model)
    assert enc.exit_code == 0 and "bytes" in enc.stdout
    dec = invoke("decode", str(tmp_path / "x.apc"), str(tmp_path / "dec.wav"), *CPU, model=runtime_model)
    assert dec.exit_code == 0, dec.output
    a, rate = sf.read(tmp_path / "run.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "dec.wav", dtype="int16")
    assert rate == 44100 and a.shape == (sf.info(clip).frames,)
    np.testing.assert_array_equal(a, b)

    low = invoke("encode", str(clip), str(tmp_path / "low.apc"), "--codebooks", "1", *CPU, model=runtime_model)
    assert low.exit_code == 0 and (tmp_path / "low.apc").stat().st_size < (tmp_path / "x.apc").stat().st_size
    assert listing(tmp_path) == ["dec.wav", "in.wav", "low.apc", "run.wav", "x.apc"]


def test_model_from_environment_and_default_folder(runtime_model, clip, tmp_path, monkeypatch):
    monkeypatch.setenv("APUCODEC_MODEL", str(runtime_model))
    assert invoke("run", str(clip), str(tmp_path / "a.wav"), *CPU).exit_code == 0
    monkeypatch.delenv("APUCODEC_MODEL")
    monkeypatch.chdir(tmp_path)
    bundled = invoke("run", str(clip), "b.wav", *CPU)  # no env, no ./apucodec-model: the bundled model
    assert bundled.exit_code == 0 and "bundled default model" in bundled.stdout
    shutil.copytree(runtime_model, tmp_path / "apucodec-model")
    local = invoke("run", str(clip), "b.wav", *CPU)
    assert local.exit_code == 0 and "apucodec-model" in local.stdout and "bundled" not in local.stdout
    assert_one_line_error(invoke("run", str(clip), "c.wav", *CPU, "--model", "nowhere"), "nowhere",
                          "no such model directory")


def test_fallback_warning_and_strict(runtime_model, clip, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA EP: no fallback to observe")
    result = invoke("run", str(clip), str(tmp_path / "a.wav"), "--encoder-ep", "cpu", "--decoder-ep", "cuda",
                    model=runtime_model)
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: decoder: running on CPU, not CUDA")
    strict = invoke("run", str(clip), str(tmp_path / "b.wav"), "--encoder-ep", "cpu", "--decoder-ep", "cuda",
                    "--strict", model=runtime_model)
    assert_one_line_error(strict, "decoder", "--strict")
    assert not (tmp_path / "b.wav").exists()


def test_bad_inputs(runtime_model, clip, tmp_path):
    out = tmp_path / "out.wav"
    assert_one_line_error(invoke("run", str(tmp_path / "nope.wav"), str(out), *CPU, model=runtime_model),
                          "nope.wav", "no such file")
    assert_one_line_error(invoke("run", str(tmp_path), str(out), *CPU, model=runtime_model), "is a directory")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 44100)
    assert_one_line_error(invoke("run", str(empty), str(out), *CPU, model=runtime_model), "no audio samples")
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    assert_one_line_error(invoke("run", str(zero_bytes), str(out), *CPU, model=runtime_model), "not readable audio")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(os.urandom(4000))
    assert_one_line_error(invoke("encode", str(garbage), str(tmp_path / "g.apc"), *CPU, model=runtime_model),
                          "garbage.wav", "not readable audio")
    for bad in (np.nan, np.inf):
        nan = tmp_path / "nan.wav"
        audio = tone(1.0)
        audio[5000] = bad
        sf.write(nan, audio, 44100, subtype="FLOAT")
        assert_one_line_error(invoke("run", str(nan), str(out), *CPU, model=runtime_model), "NaN or infinite")
    assert_one_line_error(invoke("run", str(clip), str(clip), *CPU, model=runtime_model), "output is the input")
    assert_one_line_error(invoke("run", str(clip), str(tmp_path / "missing" / "o.wav"), *CPU, model=runtime_model),
                          "does not exist")
    assert_one_line_error(invoke("run", str(clip), str(tmp_path), *CPU, model=runtime_model), "is a directory")
    assert_one_line_error(invoke("run", str(clip), str(out), "--codebooks", "5", *CPU, model=runtime_model),
                          "--codebooks must be in 1..4")
    assert_one_line_error(invoke("run", str(clip), str(out), "--decoder-ep", "gpu", model=runtime_model),
                          "unknown execution provider")
    assert_one_line_error(invoke("run", str(clip), str(out), "--ep-option", "vitisai-target", *CPU,
                                 model=runtime_model), "EP:KEY=VALUE")
    assert listing(tmp_path) == ["empty.wav", "garbage.wav", "in.wav", "nan.wav", "zero.wav"]


def test_bad_model_directories(runtime_model, clip, tmp_path):
    out = tmp_path / "out.wav"
    broken = tmp_path / "model"
    shutil.copytree(runtime_model, broken)
    with open(broken / "decoder.s8.onnx", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert_one_line_error(invoke("run", str(clip), str(out), *CPU, model=broken), "decoder.s8.onnx", "sha256")
    (broken / "manifest.json").write_text("{not json")
    assert_one_line_error(invoke("run", str(clip), str(out), *CPU, model=broken), "manifest")
    assert_one_line_error(invoke("run", str(clip), str(out), *CPU, model=clip), "is not a model directory")
    assert not out.exists()


def test_bad_apc_files_and_another_models_file(runtime_model, clip, tmp_path):
    apc = tmp_path / "x.apc"
    assert invoke("encode", str(clip), str(apc), *CPU, model=runtime_model).exit_code == 0
    data = apc.read_bytes()
    out = tmp_path / "out.wav"
    (tmp_path / "cut.apc").write_bytes(data[: len(data) // 2])
    assert_one_line_error(invoke("decode", str(tmp_path / "cut.apc"), str(out), *CPU, model=runtime_model),
                          "cut.apc", "not a valid .apc file")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    (tmp_path / "flip.apc").write_bytes(bytes(flipped))
    assert_one_line_error(invoke("decode", str(tmp_path / "flip.apc"), str(out), *CPU, model=runtime_model), "CRC32")
    assert_one_line_error(invoke("decode", str(clip), str(out), *CPU, model=runtime_model), "wrong magic")

    other = tmp_path / "other-model"  # same shapes, different weights: a different model id
    shutil.copytree(runtime_model, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model_id"] = "0000000000000000"
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(invoke("decode", str(apc), str(out), *CPU, model=other), "made by model", "--force")
    assert not out.exists()
    forced = invoke("decode", str(apc), str(out), "--force", *CPU, model=other)
    assert forced.exit_code == 0 and out.exists() and "--force" in forced.stderr


def test_runtime_commands_do_not_import_torch(runtime_model, clip, tmp_path):
    probe, loaded = modules_loaded("import apucodec.runtime, apucodec.runtime.codec_runner, apucodec.cli.codec")
    assert probe.returncode == 0, probe.stderr
    assert loaded == []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    model = ["--model", str(runtime_model), *CPU]
    for args in (["run", str(clip), str(tmp_path / "a.wav")], ["encode", str(clip), str(tmp_path / "a.apc")],
                 ["decode", str(tmp_path / "a.apc"), str(tmp_path / "b.wav")]):
        proc, loaded = cli_modules_loaded(*args, *model, env=env)
        assert proc.returncode == 0, proc.stderr
        assert loaded == [], (args[0], proc.stderr)


def test_ctrl_c_mid_run_leaves_no_partial_output(runtime_model, tmp_path):
    """SIGINT while the output is being written: exit 130, one line, and neither the output nor its temp file."""
    src = tmp_path / "long.wav"
    with sf.SoundFile(src, "w", 44100, 1, "PCM_16") as fh:
        for i in range(600):
            fh.write(tone(1.0, 100 + i))
    out = tmp_path / "out.wav"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from apucodec.cli.main import main; main()", "run", str(src), str(out),
               "--model", str(runtime_model), *CPU]
    # A shell that starts CI in the background hands its children SIGINT ignored; the child restores the default so
    # Python installs its KeyboardInterrupt handler, as it does for a user at a terminal.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not writing_into(proc.pid, tmp_path):  # the (unnamed) output is open
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted: no output was written" in stderr and "Traceback" not in stderr
    assert listing(tmp_path) == ["long.wav"]


def test_no_warnings_on_a_machine_without_npu_or_gpu(runtime_model, clip, tmp_path):
    """An ordinary PC: the default EP order falls back quietly; the summary line alone says where stages ran."""
    env = {k: v for k, v in os.environ.items() if k != "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER"}
    probe = subprocess.run([sys.executable, "-c", "from apucodec.runtime.eps import probe_ep\n"
                            "print(any(probe_ep(ep).ok for ep in ('VitisAIExecutionProvider', "
                            "'WebGpuExecutionProvider', 'MIGraphXExecutionProvider', 'CUDAExecutionProvider', "
                            "'DmlExecutionProvider')))"], env=env, capture_output=True, text=True, check=True)
    if probe.stdout.strip() == "True":
        pytest.skip("this machine has an NPU or GPU EP: fallbacks here are news")
    done = subprocess.run([sys.executable, "-m", "apucodec", "run", str(clip), str(tmp_path / "out.wav"), "--model",
                           str(runtime_model), "--threads", "1"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("warning:")], done.stderr
    assert "encoder CPU, rvq NumPy (CPU), decoder CPU" in done.stdout
