"""A FIFO or a process substitution as INPUT is read exactly once (hardening round three, class 9): it used to be
probed and then opened a second time, which blocks forever once the writer has gone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import soundfile as sf

from tests.audio_factory import speech_like
from tests.cli_helpers import CPU, invoke
from tests.tokenize_helpers import cli_env


@pytest.fixture(scope="module")
def files(tmp_path_factory, runtime_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fifo_in")
    sf.write(root / "in.wav", speech_like(0.5), 44100)
    assert invoke("encode", str(root / "in.wav"), str(root / "in.apc"), *CPU, model=runtime_model).exit_code == 0
    assert invoke("run", str(root / "in.wav"), str(root / "ref.wav"), *CPU, model=runtime_model).exit_code == 0
    return {"wav": root / "in.wav", "apc": root / "in.apc", "ref": root / "ref.wav"}


def _feed(fifo: Path, data: bytes) -> threading.Thread:
    def write() -> None:
        with open(fifo, "wb") as fh:  # opens once: a second open by the reader would wait here forever
            fh.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("command, source, out_name", [("run", "wav", "o.wav"), ("encode", "wav", "o.apc"),
                                                       ("decode", "apc", "o.wav"), ("stream", "wav", "o.wav")])
def test_a_fifo_input_is_read_once(files, runtime_model, tmp_path, command, source, out_name):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = _feed(fifo, files[source].read_bytes())
    result = invoke(command, str(fifo), str(tmp_path / out_name), *CPU, model=runtime_model)
    writer.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert not writer.is_alive()
    if command == "run":
        assert (tmp_path / out_name).read_bytes() == files["ref"].read_bytes()


def test_a_process_substitution_input_works(files, runtime_model, tmp_path):
    script = (f"{sys.executable} -m apucodec run <(cat {files['wav']}) {tmp_path / 'o.wav'} "
              f"{' '.join(CPU)} --model {runtime_model}")
    proc = subprocess.run(["bash", "-c", script], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o.wav").read_bytes() == files["ref"].read_bytes()
