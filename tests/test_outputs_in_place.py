"""Every writer goes through the one output path (apucodec.io.outputs): devices and FIFOs are written in place and never
replaced, `-` is standard output everywhere, a replaced file keeps its mode, and names that can never be a file
(`o.wav/`, a 304-byte component) are refused with one line, while non-UTF-8 names are ordinary paths.

Hardening round three, classes 1, 5 and 10 (issue 27). `stream` and `Codes.save` used to rename a temp file over
the target: a copy of /dev/null became a regular file, `stream in.wav -` wrote a file named `-`, a 0600 output
came back 0644, and `o.wav/` quietly became `o.wav`.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apucodec.codes import Codes
from apucodec.errors import ApucodecError
from tests.audio_factory import speech_like
from tests.cli_helpers import CPU, assert_one_line_error, invoke
from tests.refusal_helpers import digest, listing
from tests.tokenize_helpers import cli_env


@pytest.fixture(scope="module")
def scene(tmp_path_factory, runtime_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("outputs")
    sf.write(root / "in.wav", speech_like(1.0), 44100)
    result = invoke("encode", str(root / "in.wav"), str(root / "in.apc"), *CPU, model=runtime_model)
    assert result.exit_code == 0, result.output
    return {"root": root, "wav": root / "in.wav", "apc": root / "in.apc", "model": runtime_model}


def _char_device(folder: Path, name: str, minor: int) -> Path:
    """A copy of /dev/null (minor 3) or /dev/full (minor 7) made with mknod (needs CAP_MKNOD: root in CI)."""
    path = folder / name
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    return path


def _codes(scene) -> Codes:
    return Codes.load(scene["apc"])


@pytest.mark.parametrize("command", ["run", "stream", "decode"])
def test_a_copy_of_dev_null_stays_a_device(scene, tmp_path, command):
    node = _char_device(tmp_path, "null", 3)
    source = scene["apc"] if command == "decode" else scene["wav"]
    result = invoke(command, str(source), str(node), *CPU, model=scene["model"])
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(os.stat(node).st_mode) and listing(tmp_path) == ["null"]


def test_a_copy_of_dev_full_stays_a_device_and_fails_in_one_line(scene, tmp_path):
    node = _char_device(tmp_path, "full", 7)
    result = invoke("stream", str(scene["wav"]), str(node), *CPU, model=scene["model"])
    assert_one_line_error(result, str(node), "No space left on device")
    assert stat.S_ISCHR(os.stat(node).st_mode) and listing(tmp_path) == ["full"]


def test_codes_save_to_a_device_writes_in_place(scene, tmp_path, runtime_model):
    node = _char_device(tmp_path, "null", 3)
    _codes(scene).save(node)
    assert stat.S_ISCHR(os.stat(node).st_mode) and listing(tmp_path) == ["null"]


def test_codes_save_to_a_fifo_streams_into_it(scene, tmp_path):
    fifo = tmp_path / "codes.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    _codes(scene).save(fifo)
    reader.join(timeout=30)
    assert got and got[0] == scene["apc"].read_bytes()  # the same bytes `encode` wrote
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and listing(tmp_path) == ["codes.fifo"]


def test_stream_and_codes_save_to_dash_write_stdout_not_a_file(scene, tmp_path):
    stream = subprocess.run([sys.executable, "-m", "apucodec", "stream", str(scene["wav"]), "-", *CPU, "--model",
                             str(scene["model"])], cwd=tmp_path, env=cli_env(), capture_output=True, timeout=120)
    assert stream.returncode == 0, stream.stderr
    assert stream.stdout[:4] == b"RIFF" and b"stream" in stream.stderr  # the summary went to stderr
    code = ("import sys; from apucodec.codes import Codes; "
            f"Codes.load({str(scene['apc'])!r}).save('-')")
    save = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, timeout=60)
    assert save.returncode == 0, save.stderr
    assert save.stdout == scene["apc"].read_bytes()
    assert listing(tmp_path) == []  # no file named '-'


@pytest.mark.parametrize("command", ["run", "encode", "decode", "stream"])
def test_a_replaced_output_keeps_its_mode(scene, tmp_path, command):
    out = tmp_path / ("out.apc" if command == "encode" else "out.wav")
    out.write_bytes(b"old")
    out.chmod(0o600)
    source = scene["apc"] if command == "decode" else scene["wav"]
    result = invoke(command, str(source), str(out), *CPU, model=scene["model"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_bytes() != b"old"


def test_codes_save_keeps_the_mode_and_new_files_get_the_umask(scene, tmp_path):
    kept = tmp_path / "kept.apc"
    kept.write_bytes(b"x")
    kept.chmod(0o640)
    _codes(scene).save(kept)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    old = os.umask(0o077)
    try:
        _codes(scene).save(tmp_path / "new.apc")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.apc").stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["o.wav/", "o.wav/.", "sub/o.wav/"])
@pytest.mark.parametrize("command", ["run", "stream", "decode"])
def test_a_name_ending_in_a_slash_is_refused_not_shortened(scene, tmp_path, command, name):
    (tmp_path / "sub").mkdir()
    before = listing(tmp_path)
    source = scene["apc"] if command == "decode" else scene["wav"]
    result = invoke(command, str(source), f"{tmp_path}/{name}", *CPU, model=scene["model"])
    assert_one_line_error(result, "names a directory")
    assert listing(tmp_path) == before and listing(tmp_path / "sub") == []


def test_encode_and_codes_save_refuse_a_trailing_slash(scene, tmp_path):
    result = invoke("encode", str(scene["wav"]), f"{tmp_path}/o.apc/", *CPU, model=scene["model"])
    assert_one_line_error(result, "names a directory")
    with pytest.raises(ApucodecError, match="names a directory"):
        _codes(scene).save(f"{tmp_path}/c.apc/")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("where", ["output", "input"])
def test_a_304_byte_name_is_one_line(scene, tmp_path, where):
    long_name = str(tmp_path / ("a" * 300 + ".wav"))
    args = (str(scene["wav"]), long_name) if where == "output" else (long_name, str(tmp_path / "o.wav"))
    result = invoke("run", *args, *CPU, model=scene["model"])
    assert_one_line_error(result, "file name too long (304 bytes")
    assert listing(tmp_path) == []


def test_non_utf8_names_are_accepted_for_input_and_output(scene, tmp_path):
    raw_in = os.fsdecode(bytes(tmp_path) + b"/\xffin.wav")
    raw_out = os.fsdecode(bytes(tmp_path) + b"/\xfe\xffout.wav")
    Path(raw_in).write_bytes(scene["wav"].read_bytes())
    before = digest(Path(raw_in))
    result = invoke("run", raw_in, raw_out, *CPU, model=scene["model"])
    assert result.exit_code == 0, result.output
    audio, rate = sf.read(os.fsencode(raw_out))
    assert rate == 44100 and audio.size == 44100 and np.any(audio != 0)
    assert digest(Path(raw_in)) == before
