"""`apucodec pull`: download (resume, hashes, failures) against a loopback HTTP server, then export and load by name.

There is no network here: each test serves its files from http.server on 127.0.0.1 and points $APUCODEC_REGISTRY
at a JSON registry naming them, with the user cache in the test's folder. Every failure is one line and leaves
nothing behind but, for an interrupted transfer, the resumable .part file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apucodec.errors import ApucodecError
from apucodec.model.download import FIRST_USE_FILE, downloads_dir, fetch
from apucodec.model.registry import lookup
from tests.audio_factory import mixture
from tests.cli_helpers import CPU, assert_one_line_error, invoke
from tests.tiny_models import torch_threads

PAYLOAD = np.random.default_rng(7).integers(0, 256, size=3 * 2**20 + 123, dtype=np.uint8).tobytes()


class Server:
    """Files by path; `mode` changes how the next responses misbehave. Records each request's Range header."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mode = "ok"
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.ranges.append(self.headers.get("Range"))
                data = server.files.get(self.path)
                if data is None or server.mode == "error":
                    self.send_error(404 if data is None else 500)
                    return
                start = 0
                if self.headers.get("Range") and server.mode != "norange":
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "truncate":  # promise the whole body, send a third of it, hang up
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("APUCODEC_CACHE_DIR", str(root))
    return root


def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **models: dict) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"models": models}))
    monkeypatch.setenv("APUCODEC_REGISTRY", str(path))
    return path


def _serve(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes = PAYLOAD,
           **fields: object) -> str:
    server.files["/w.pth"] = data
    registry(tmp_path, monkeypatch, small={"url": server.url("/w.pth"), "file_name": "small.pth", "family": "x",
                                           **fields})
    return "small"


def _left(cache: Path) -> list[str]:
    folder = downloads_dir(cache)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_interrupted_download_resumes_where_it_stopped(server, cache, tmp_path, monkeypatch):
    name = _serve(server, tmp_path, monkeypatch)
    server.mode = "truncate"
    with pytest.raises(ApucodecError, match="download interrupted .* kept in .*small.pth.part") as info:
        fetch(lookup(name))
    assert "\n" not in str(info.value)
    kept = (downloads_dir(cache) / "small.pth.part").stat().st_size
    assert 0 < kept < len(PAYLOAD) and _left(cache) == ["small.pth.part"]   # no final file, only the part
    server.mode = "ok"
    said: list[str] = []
    done = fetch(lookup(name), log=said.append)
    assert server.ranges == [None, f"bytes={kept}-"] and done.resumed_from == kept
    assert done.path.read_bytes() == PAYLOAD and done.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert _left(cache) == [FIRST_USE_FILE, "small.pth"]                    # the part became the file
    assert done.trust == "first-use" and any("trust on first use" in line for line in said)
    # a server that ignores the range sends everything again: the part is replaced, not extended
    done.path.unlink()
    (downloads_dir(cache) / "small.pth.part").write_bytes(b"garbage")
    server.mode = "norange"
    assert fetch(lookup(name)).path.read_bytes() == PAYLOAD


def test_a_wrong_sha256_removes_the_download(server, cache, tmp_path, monkeypatch):
    name = _serve(server, tmp_path, monkeypatch, sha256="0" * 64)
    with pytest.raises(ApucodecError, match="does not match the pinned 0{64}; the download was removed"):
        fetch(lookup(name))
    assert _left(cache) == []
    # a published prefix that does not match
    name = _serve(server, tmp_path, monkeypatch, sha256_prefix="abcdef12")
    with pytest.raises(ApucodecError, match="does not start with the published abcdef12"):
        fetch(lookup(name))
    assert _left(cache) == []


def test_a_file_that_changed_since_its_first_download_is_refused(server, cache, tmp_path, monkeypatch):
    name = _serve(server, tmp_path, monkeypatch)
    first = fetch(lookup(name))
    first.path.unlink()                                    # gone from the cache; the record of its hash stays
    server.files["/w.pth"] = PAYLOAD[:-1] + b"!"
    with pytest.raises(ApucodecError, match="recorded at its first download"):
        fetch(lookup(name))
    assert _left(cache) == [FIRST_USE_FILE]


@pytest.mark.parametrize("mode", ["error", "missing"])
def test_a_server_error_writes_nothing(server, cache, tmp_path, monkeypatch, mode):
    name = _serve(server, tmp_path, monkeypatch)
    if mode == "missing":
        server.files.clear()
    else:
        server.mode = "error"
    with pytest.raises(ApucodecError, match=f"HTTP {404 if mode == 'missing' else 500}.*nothing was downloaded"):
        fetch(lookup(name))
    assert _left(cache) == []


def test_no_connection_writes_nothing(cache, tmp_path, monkeypatch):
    registry(tmp_path, monkeypatch, gone={"url": "http://127.0.0.1:9/w.pth", "file_name": "gone.pth"})
    with pytest.raises(ApucodecError, match="cannot download .*nothing was written"):
        fetch(lookup("gone"))
    assert _left(cache) == []


DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    from apucodec.errors import ApucodecError
    from apucodec.model.download import fetch
    from apucodec.model.registry import lookup
    # a file-size limit makes the write itself fail (EFBIG) once the file would grow past it, as a full disk
    # fails it with ENOSPC; SIGXFSZ ignored so that the write returns the error instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        fetch(lookup("small"))
    except ApucodecError as exc:
        print(exc)
        sys.exit(1)
""")


def test_a_full_disk_removes_the_partial_file(server, cache, tmp_path, monkeypatch):
    _serve(server, tmp_path, monkeypatch)
    proc = subprocess.run([sys.executable, "-c", DISK_FULL], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "no space left for the download" in lines[0] and "removed" in lines[0], proc.stdout
    assert _left(cache) == []


def test_pull_cli_failures_are_one_line(server, cache, tmp_path, monkeypatch):
    name = _serve(server, tmp_path, monkeypatch, sha256="1" * 64)
    assert_one_line_error(invoke("pull", name), "does not match the pinned")
    assert_one_line_error(invoke("pull", "no-such-model"), "no such model to pull", "small")
    wav = tmp_path / "in.wav"
    sf.write(wav, mixture(0.2, seed=1), 44100)
    assert_one_line_error(invoke("run", str(wav), str(tmp_path / "out.wav"), "--model", name), "not pulled yet",
                          f"apucodec pull {name}")
    assert not (tmp_path / "out.wav").exists()
    monkeypatch.setitem(sys.modules, "onnx", None)      # the export extra missing: said before downloading
    assert_one_line_error(invoke("pull", name), "apucodec[export]")
    assert server.ranges == [None]                      # only the first pull asked the server
    assert _left(cache) == []


def test_registry_entries_are_checked(tmp_path, monkeypatch):
    registry(tmp_path, monkeypatch, bad={"url": "file:///etc/passwd", "file_name": "x"})
    with pytest.raises(ApucodecError, match="url must be an http"):
        lookup("bad")
    registry(tmp_path, monkeypatch, bad={"url": "https://x/y", "file_name": "../x"})
    with pytest.raises(ApucodecError, match="file_name must be a plain file name"):
        lookup("bad")
    monkeypatch.delenv("APUCODEC_REGISTRY")
    official = {name: lookup(name) for name in ("dac-44khz", "dac-24khz", "dac-16khz", "encodec-24khz")}
    assert official["encodec-24khz"].sha256_prefix == "d7cc33bc"
    assert all(r.url.startswith("https://") for r in official.values())


def test_pull_exports_the_release_and_it_loads_by_name(server, cache, tmp_path, monkeypatch, tiny_checkpoint):
    """The whole path on a tiny project-family checkpoint: pull -> download -> sha256 -> export -> load by name."""
    import apucodec

    data = tiny_checkpoint.read_bytes()
    name = _serve(server, tmp_path, monkeypatch, data=data, sha256=hashlib.sha256(data).hexdigest())
    with torch_threads(1):  # the tiny export is faster on one thread than on two contended ones
        result = invoke("pull", name)
    assert result.exit_code == 0, result.output
    assert f"pulled {name}" in result.output and "pinned" in result.output
    model_dir = cache / "models" / name
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["export"]["source"]["pulled"] == {"name": name, "url": server.url("/w.pth"),
                                                      "sha256": hashlib.sha256(data).hexdigest(),
                                                      "bytes": len(data), "trust": "pinned"}
    codec = apucodec.load(name, encoder_ep="cpu", decoder_ep="cpu")
    audio = mixture(0.5, seed=4)
    assert codec.model.path == model_dir and codec.encode(audio).array.shape[1] > 0
    wav = tmp_path / "in.wav"
    sf.write(wav, audio, 44100)
    ran = invoke("run", str(wav), str(tmp_path / "out.wav"), *CPU, "--model", name)
    assert ran.exit_code == 0, ran.output and (tmp_path / "out.wav").is_file()
    again = invoke("pull", name)                              # nothing to do: no request, no export
    assert again.exit_code == 0 and f"already pulled {name}" in again.output and server.ranges == [None]


def test_a_name_resolves_to_the_pulled_directory_and_a_folder_of_that_name_wins(cache, tmp_path, monkeypatch):
    from apucodec.model.location import locate_model

    registry(tmp_path, monkeypatch, small={"url": "https://example.invalid/w.pth", "file_name": "w.pth"})
    pulled = cache / "models" / "small"
    pulled.mkdir(parents=True)
    (pulled / "manifest.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert locate_model("small").path == pulled
    monkeypatch.setenv("APUCODEC_MODEL", "small")
    assert locate_model().path == pulled
    (tmp_path / "small").mkdir()                      # a folder the user has, named like the model
    assert locate_model("small").path == Path("small")
    assert locate_model("elsewhere/small").path == Path("elsewhere/small")   # a path is never a name
