"""A cache that cannot be written or read back is skipped with one note, never fatal (hardening round three,
class 8): a full cache filesystem made every run fail with "no execution provider could run it
(INVALID_PROTOBUF)", and a HOME the user cannot write gave a traceback.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from apucodec.model.verified_hashes import sha256_file
from apucodec.runtime.session_cache import SUBDIR
from tests.audio_factory import speech_like
from tests.cli_helpers import CPU
from tests.tokenize_helpers import cli_env


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache_in") / "in.wav"
    sf.write(path, speech_like(0.5), 44100)
    return path


def _run(wav: Path, model: Path, out: Path, env: dict[str, str], limit: int | None = None):
    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "apucodec", "run", str(wav), str(out), *CPU, "--model", str(model)],
                          env=env, capture_output=True, text=True, timeout=180,
                          preexec_fn=small_files if limit else None)


def _ok_with_one_note(proc, out: Path) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and out.is_file()
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ") and "cache" in line]
    assert len(notes) == 1, proc.stderr
    assert "skipped" in notes[0]


@pytest.mark.parametrize("where", ["cache_dir_under_a_file", "home_is_a_file"])
def test_an_unwritable_cache_is_skipped_with_one_note(wav, runtime_model, tmp_path, where):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    env = {k: v for k, v in cli_env().items() if k not in ("APUCODEC_CACHE_DIR", "XDG_CACHE_HOME")}
    if where == "cache_dir_under_a_file":
        env["APUCODEC_CACHE_DIR"] = str(blocker / "cache")
    else:  # `sudo -u` keeping the caller's HOME: nothing under it can be created
        env["HOME"] = str(blocker)
    _ok_with_one_note(_run(wav, runtime_model, tmp_path / "o.wav", env), tmp_path / "o.wav")


def test_a_full_cache_filesystem_is_skipped_with_one_note(wav, runtime_model, tmp_path):
    """RLIMIT_FSIZE below a graph's size makes ORT's optimized-graph write fail (EFBIG) as a full disk does; the
    audio output (0.5 s of 16-bit WAV, 44 KB) stays under the limit."""
    env = {**cli_env(), "APUCODEC_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "o.wav"
    _ok_with_one_note(_run(wav, runtime_model, out, env, limit=100_000), out)
    assert not list((tmp_path / "cache" / SUBDIR).glob("*.onnx"))  # nothing half-written was kept


def test_a_cached_graph_that_does_not_load_back_is_dropped(wav, runtime_model, tmp_path):
    env = {**cli_env(), "APUCODEC_CACHE_DIR": str(tmp_path / "cache")}
    first = _run(wav, runtime_model, tmp_path / "a.wav", env)
    assert first.returncode == 0, first.stderr
    cached = sorted((tmp_path / "cache" / SUBDIR).glob("*.onnx"))
    assert cached
    for graph in cached:  # truncated as a full disk leaves it, with metadata that agrees (the worst case)
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 3])
        meta = graph.with_suffix(".json")
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "optimized_sha256": sha256_file(graph)}))
    _ok_with_one_note(_run(wav, runtime_model, tmp_path / "b.wav", env), tmp_path / "b.wav")
    third = _run(wav, runtime_model, tmp_path / "c.wav", env)  # rebuilt by the run that dropped them
    assert third.returncode == 0 and "note:" not in third.stderr, third.stderr
    assert (tmp_path / "b.wav").read_bytes() == (tmp_path / "a.wav").read_bytes()
