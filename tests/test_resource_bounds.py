"""Small inputs that ask for huge allocations are refused with one line before anything is allocated, and options
that would do nothing are refused instead of ignored (hardening round three, classes 3, 10, 11 and 12).

A 400 KB WAV whose header says 1 Hz asked the resampler for 16.5 GB; a checkpoint config asking for 1,048,576
channels was built (and OOM-killed) before its tensors were looked at; a manifest holding a 1 GiB string took 2 GB
to parse, and one nested 100,000 deep ended in a RecursionError; `decode bitflipped.apc -` wrote 51 MB of corrupt
audio before the CRC error; `decode --precision int8 --ep-context-out x` ignored both options silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apucodec.errors import ApucodecError
from tests.audio_factory import speech_like
from tests.cli_helpers import CPU, assert_one_line_error, invoke
from tests.refusal_helpers import digest, listing
from tests.tokenize_helpers import cli_env


@pytest.fixture(scope="module")
def scene(tmp_path_factory, runtime_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bounds")
    sf.write(root / "in.wav", speech_like(1.0), 44100)
    result = invoke("encode", str(root / "in.wav"), str(root / "in.apc"), *CPU, model=runtime_model)
    assert result.exit_code == 0, result.output
    return {"root": root, "wav": root / "in.wav", "apc": root / "in.apc", "model": runtime_model}


def _model_copy(scene, tmp_path: Path) -> Path:
    return Path(shutil.copytree(scene["model"], tmp_path / "model"))


@pytest.mark.parametrize("rate", [1, 999, 2_000_000])
@pytest.mark.parametrize("command", ["run", "encode", "stream"])
def test_an_absurd_input_rate_is_refused_before_resampling(scene, tmp_path, command, rate):
    bomb = tmp_path / "bomb.wav"
    sf.write(bomb, np.zeros(200_000, dtype=np.int16), rate, subtype="PCM_16")  # 400 KB
    out = tmp_path / ("out.apc" if command == "encode" else "out.wav")
    result = invoke(command, str(bomb), str(out), *CPU, model=scene["model"])
    assert_one_line_error(result, str(bomb), f"sample rate {rate} Hz is outside 1000..1000000 Hz")
    assert listing(tmp_path) == ["bomb.wav"]


def test_the_api_bounds_rates_both_ways(scene):
    import apucodec

    codec = apucodec.load(scene["model"])
    with pytest.raises(ApucodecError, match="sample rate"):
        codec.encode(np.zeros(400, dtype=np.float32), sample_rate=1)
    codes = codec.encode(np.zeros(4410, dtype=np.float32))
    with pytest.raises(ApucodecError, match="sample rate 4000000000 Hz is outside 1000..1000000 Hz"):
        codec.decode(codes, sample_rate=4_000_000_000)


def test_an_apc_claiming_a_1_hz_input_is_refused(scene, tmp_path):
    from tests.test_cli_refusals import apc

    bad = tmp_path / "slow.apc"
    model_id = json.loads((scene["model"] / "manifest.json").read_text())["model_id"]
    bad.write_bytes(apc(model_id, input_rate=1, input_length=1))
    result = invoke("decode", str(bad), str(tmp_path / "o.wav"), "--match-input", *CPU, model=scene["model"])
    assert_one_line_error(result, "impossible sample rate")


@pytest.mark.parametrize("case", ["huge", "deep", "fifo"])
def test_a_hostile_manifest_is_one_line(scene, tmp_path, case):
    model = _model_copy(scene, tmp_path)
    manifest = model / "manifest.json"
    if case == "huge":  # the size is checked from stat: nothing is read
        with open(manifest, "r+b") as fh:
            fh.seek(64 << 20)
            fh.write(b" ")
        expected = "at most 4194304 are read"
    elif case == "deep":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
        expected = "nested"
    else:
        manifest.unlink()
        os.mkfifo(manifest)  # would block forever in a plain read
        expected = "not an apucodec model directory"
    result = invoke("run", str(scene["wav"]), str(tmp_path / "o.wav"), *CPU, model=model)
    assert_one_line_error(result, "manifest.json", expected)
    assert not (tmp_path / "o.wav").exists()


def test_a_deeply_nested_user_config_is_one_line(scene, tmp_path, monkeypatch):
    config = tmp_path / "xdg" / "apucodec" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text('{"workers": ' + "[" * 50_000 + "]" * 50_000 + "}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    result = invoke("run", str(scene["wav"]), str(tmp_path / "o.wav"), *CPU, model=scene["model"])
    assert_one_line_error(result, "config.json", "nested")


def test_an_unreadable_graph_file_is_one_line(scene, tmp_path, monkeypatch):
    import apucodec.model.directory as model_dir

    def refuse(path, expected, root=None):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(model_dir, "matches_sha256", refuse)  # as root, chmod 000 cannot make a file unreadable
    result = invoke("run", str(scene["wav"]), str(tmp_path / "o.wav"), *CPU, model=scene["model"])
    assert_one_line_error(result, "cannot read it (Permission denied)")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    """The tiny checkpoint with its config inflated, a tensor reshaped, one missing and one extra."""
    torch = pytest.importorskip("torch")
    base = torch.load(tiny_checkpoint, weights_only=True)
    folder = tmp_path_factory.mktemp("hostile_checkpoints")
    key = "encoder.input_conv.bias"
    variants = {
        "bomb": {**base, "config": {**base["config"], "channels": [1_048_576] * len(base["config"]["channels"])}},
        "shape": {**base, "state_dict": {**base["state_dict"], key: torch.zeros(3, 3)}},
        "missing": {**base, "state_dict": {k: v for k, v in base["state_dict"].items() if k != key}},
        "extra": {**base, "state_dict": {**base["state_dict"], "evil.weight": torch.zeros(1)}},
    }
    paths = {}
    for name, data in variants.items():
        paths[name] = folder / f"{name}.pt"
        torch.save(data, paths[name])
    return paths


@pytest.mark.parametrize("case, fragments", [
    ("bomb", ("encoder.input_conv.bias has shape [4] in the checkpoint, but its config asks for [1048576]",)),
    ("shape", ("encoder.input_conv.bias has shape [3, 3]", "asks for [4]")),
    ("missing", ("lacks encoder.input_conv.bias (shape [4])",)),
    ("extra", ("holds evil.weight",)),
])
def test_a_checkpoint_config_is_checked_against_its_tensors_before_building(checkpoints, tmp_path, case, fragments):
    before = digest(checkpoints[case])
    result = invoke("export", "--checkpoint", str(checkpoints[case]), "--out", str(tmp_path / "m"), "-q")
    assert_one_line_error(result, str(checkpoints[case]), *fragments)
    assert listing(tmp_path) == [] and digest(checkpoints[case]) == before  # no partial folder, input untouched


@pytest.mark.parametrize("value", ["nan", "inf", "-nan"])
def test_bench_seconds_must_be_finite(scene, value):
    result = invoke("bench", "--seconds", value, *CPU, model=scene["model"])
    assert_one_line_error(result, "--seconds must be a finite number")


def test_worker_timeout_nan_is_one_line(scene, tmp_path):
    result = invoke("run", str(scene["wav"]), str(tmp_path / "o.wav"), "--worker-timeout", "nan", *CPU,
                    model=scene["model"])
    assert_one_line_error(result, "--worker-timeout must be a finite number")


def test_decode_a_bitflipped_apc_to_a_pipe_writes_nothing(scene, tmp_path):
    bad = tmp_path / "flipped.apc"
    data = bytearray(scene["apc"].read_bytes())
    data[100] ^= 0x10
    bad.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "apucodec", "decode", str(bad), "-", *CPU, "--model",
                           str(scene["model"])], env=cli_env(), capture_output=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == b""  # not one byte of corrupt audio reached the pipe
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "CRC32 mismatch" in lines[0], proc.stderr


def test_decode_help_lists_no_encoder_only_options(scene):
    text = invoke("decode", "--help").output
    for flag in ("--ep-context-out", "--encoder-ep", "--encoder ", "|int8", "bf16"):
        assert flag not in text, flag
    assert "--decoder-ep" in text and "[auto|fp32]" in text


@pytest.mark.parametrize("args, fragment", [
    (("--precision", "int8"), "--precision int8 is the encoder's NPU precision"),
    (("--precision", "bf16"), "--precision bf16 is the encoder's NPU precision"),
    (("--ep-context-out", "x.onnx"), "--ep-context-out would be ignored"),
    (("--encoder", "int8"), "--encoder would be ignored"),
    (("--worker", "encoder=self"), "--worker encoder=self would be ignored"),
])
def test_decode_refuses_options_it_would_ignore(scene, tmp_path, args, fragment):
    result = invoke("decode", str(scene["apc"]), str(tmp_path / "o.wav"), *args, *CPU, model=scene["model"])
    assert_one_line_error(result, fragment)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("command, precision", [("run", "bf16"), ("encode", "bf16"), ("run", "int8")])
def test_npu_precisions_without_an_npu_are_refused(scene, tmp_path, command, precision):
    """bf16 without the NPU used to run FP32 silently; int8 is the NPU's graph. Refused, naming where the encoder
    would have run and what to use instead."""
    from apucodec.runtime.eps import VITISAI, probe_ep

    if probe_ep(VITISAI).ok:
        pytest.skip("this machine has the Vitis AI EP")
    out = tmp_path / ("o.apc" if command == "encode" else "o.wav")
    result = invoke(command, str(scene["wav"]), str(out), "--precision", precision, *CPU, model=scene["model"])
    if precision == "int8":  # the tiny model has no NPU INT8 graph: refused for that first, in one line too
        assert_one_line_error(result, "INT8")
    else:
        assert_one_line_error(result, f"--precision {precision} needs the NPU", "use --precision auto")
    assert listing(tmp_path) == []
