"""A model directory is data: it never chooses a program to run, a model picked up from the current directory is
named as such, and `export --force` only ever replaces a model directory (hardening round three, classes 2 and 4).

A manifest `workers` entry naming an executable inside the model directory used to be executed by a plain
`apucodec run`; `export --out DIR --force` deleted a folder of unrelated files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from apucodec.runtime.workers.plan import WORKERS_ENV, resolve_workers
from tests.audio_factory import speech_like
from tests.cli_helpers import CPU, assert_one_line_error, invoke
from tests.refusal_helpers import dir_state
from tests.tokenize_helpers import cli_env


def _hostile_model(runtime_model: Path, folder: Path, stage: str = "encoder") -> tuple[Path, Path]:
    """A copy of the tiny model whose manifest names a 'python' inside it that would leave a marker file."""
    model = Path(shutil.copytree(runtime_model, folder / "model"))
    marker = folder / "EXECUTED"
    evil = model / "python"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\nexec {sys.executable} \"$@\"\n")
    evil.chmod(0o755)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["workers"] = {stage: str(evil)}
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model, marker


@pytest.mark.parametrize("command", ["run", "encode"])
def test_a_manifest_workers_entry_is_never_executed(runtime_model, tmp_path, command):
    model, marker = _hostile_model(runtime_model, tmp_path)
    sf.write(tmp_path / "in.wav", speech_like(0.5), 44100)
    out = tmp_path / ("o.apc" if command == "encode" else "o.wav")
    result = invoke(command, str(tmp_path / "in.wav"), str(out), *CPU, model=model)
    assert result.exit_code == 0, result.output
    assert not marker.exists(), "the model directory's program ran"
    assert "the manifest's 'workers' section is ignored" in result.stderr


def test_a_manifest_workers_entry_for_the_decoder_is_ignored_by_decode(runtime_model, tmp_path):
    model, marker = _hostile_model(runtime_model, tmp_path, stage="decoder")
    sf.write(tmp_path / "in.wav", speech_like(0.5), 44100)
    assert invoke("encode", str(tmp_path / "in.wav"), str(tmp_path / "c.apc"), *CPU, model=model).exit_code == 0
    result = invoke("decode", str(tmp_path / "c.apc"), str(tmp_path / "o.wav"), *CPU, model=model)
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_worker_interpreters_come_from_the_user_only(tmp_path, monkeypatch):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"workers": {"decoder": "self"}}))
    manifest = {"workers": {"encoder": sys.executable}}
    monkeypatch.setenv(WORKERS_ENV, "encoder=self")
    assert resolve_workers({}, manifest, config) == {"encoder": "self", "decoder": "self"}
    assert resolve_workers({"encoder": "none"}, manifest, config) == {"decoder": "self"}  # the CLI wins
    monkeypatch.setenv(WORKERS_ENV, "encoder")
    with pytest.raises(Exception, match=r"\$APUCODEC_WORKERS 'encoder': expected STAGE=PYTHON"):
        resolve_workers({}, manifest, config)


def test_a_model_found_in_the_current_directory_is_named_in_the_summary(runtime_model, tmp_path):
    shutil.copytree(runtime_model, tmp_path / "apucodec-model")
    sf.write(tmp_path / "in.wav", speech_like(0.5), 44100)
    env = {k: v for k, v in cli_env().items() if k != "APUCODEC_MODEL"}
    proc = subprocess.run([sys.executable, "-m", "apucodec", "run", "in.wav", "o.wav", *CPU], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"./apucodec-model found in the current directory {tmp_path}" in proc.stdout, proc.stdout


@pytest.mark.parametrize("contents", [
    {"notes.txt": "my thesis"},
    {"manifest.json": json.dumps({"format": "something-else"}), "data.bin": "x"},
    {"manifest.json": "[" * 10_000},
])
def test_export_force_refuses_a_folder_that_is_not_a_model_directory(tiny_checkpoint, tmp_path, contents):
    target = tmp_path / "precious"
    target.mkdir()
    for name, text in contents.items():
        (target / name).write_text(text)
    before = dir_state(tmp_path)
    result = invoke("export", "--checkpoint", str(tiny_checkpoint), "--out", str(target), "--force", "-q")
    assert_one_line_error(result, str(target), "--force replaces only a model directory")
    assert dir_state(tmp_path) == before  # nothing deleted, nothing staged beside it


def test_export_force_accepts_a_model_directory_or_an_empty_folder(runtime_model, tmp_path):
    from apucodec.model.passes import check_destination

    model = Path(shutil.copytree(runtime_model, tmp_path / "model"))
    (model / "extra.txt").write_text("a file the user put there")  # still a model directory: ours to replace
    check_destination(model, force=True)
    (tmp_path / "empty").mkdir()
    check_destination(tmp_path / "empty", force=True)
