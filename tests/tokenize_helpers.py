"""Shared by the tokenize tests: a generated corpus with every kind of bad file, and a real Ray head on loopback.

The head is `ray start --head --block` in its own process group, with token authentication (a token file of its
own, so the machine's ~/.ray is never read or written); stopping it ends that process group and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.audio_factory import chirp, mixture, speech_like, tone

REPO = Path(__file__).resolve().parents[1]
RAY_ENV = "APUCODEC_TEST_RAY_ADDRESS"
GOOD = 44          # generated clips that encode, besides the 0.1 s one
BAD = {"empty.wav": "empty file", "header_only.wav": "no audio samples", "corrupt.wav": "not readable audio",
       "nan.wav": "NaN", "notes.txt": "not readable audio"}


def make_corpus(folder: Path, good: int = GOOD) -> dict[str, list[str]]:
    """`good` clips of 0.2-1.2 s (44.1 kHz mono WAV, 16 kHz FLAC, 48 kHz stereo WAV, in sub-folders), a 0.1 s clip,
    the bad files of BAD, and one duplicate of a good clip. Returns the relative paths by kind."""
    makers = [lambda s, i: mixture(s, seed=i), lambda s, i: speech_like(s, seed=i) + tone(s, 110.0 + 20 * i, amp=0.2),
              lambda s, i: chirp(s, 60.0 + i, 9000.0) * 0.7]
    kinds: dict[str, list[str]] = {"good": [], "bad": sorted(BAD), "duplicate": ["sub0/copy_of_clip000.wav"]}
    for i in range(good):
        seconds = 0.2 + (i * 7 % 11) / 10
        audio = makers[i % 3](seconds, i).astype(np.float32)
        if i % 5 == 3:
            rel, rate = f"sub{i % 3}/clip{i:03d}.flac", 16000
            audio = audio[:: 44100 // 16000][: int(seconds * rate)]
            data = audio
        elif i % 5 == 4:
            rel, rate, data = f"sub{i % 3}/deep/clip{i:03d}.wav", 48000, np.stack([audio, 0.5 * audio], axis=1)
        else:
            rel, rate, data = f"sub{i % 3}/clip{i:03d}.wav", 44100, audio
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / rel, data, rate)
        kinds["good"].append(rel)
    sf.write(folder / "short.wav", tone(0.1, 330.0), 44100)
    kinds["good"].append("short.wav")
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "header_only.wav", np.zeros(0, dtype=np.float32), 44100)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    nan = tone(0.5)
    nan[1000:1010] = np.nan
    sf.write(folder / "nan.wav", nan, 44100, subtype="FLOAT")
    (folder / "notes.txt").write_text("not audio\n")
    shutil.copyfile(folder / "sub0/clip000.wav", folder / kinds["duplicate"][0])
    return kinds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def ray_head() -> Iterator[str]:
    """The CI-provided head (APUCODEC_TEST_RAY_ADDRESS, with its RAY_AUTH_* environment), else one started here."""
    if os.environ.get(RAY_ENV):
        yield os.environ[RAY_ENV]
        return
    temp = Path(tempfile.mkdtemp(prefix="apuray", dir="/tmp"))  # short: Ray's socket paths must stay < 108 bytes
    token = temp / "token"
    token.write_text(secrets.token_hex(32))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    saved = {key: os.environ.get(key) for key in auth}
    os.environ.update(auth)  # this process's drivers and the CLI subprocesses it starts
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir",
                             str(temp), "--block"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start exited with {head.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the Ray head did not come up within 60 s") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(10)  # `ray start --block` sometimes lingers for ~30 s after TERM
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        with contextlib.suppress(OSError):
            os.killpg(head.pid, signal.SIGKILL)  # anything of the group still alive (workers)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(temp, ignore_errors=True)


def cli_env() -> dict[str, str]:
    """The environment for `python -m apucodec` subprocesses: this checkout first on the path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
