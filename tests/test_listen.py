"""`apucodec listen` without a browser: the server's guard (loopback, token, routes only), the export, the PNGs.

The browser half (decoding in headless Chromium, the screenshot) is tests/test_listen_browser.py.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apucodec.tools.listen import vendor
from apucodec.tools.listen.build import build_site
from apucodec.tools.listen.png import encode_png
from apucodec.tools.listen.server import ListenServer
from tests.audio_factory import speech_like
from tests.cli_helpers import assert_one_line_error, invoke

SECONDS = 0.4


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A folder with one clip, a symlink out of it (to a secret file) and a server over the folder."""
    root = tmp_path_factory.mktemp("listen")
    folder = root / "clips"
    folder.mkdir()
    sf.write(folder / "clip.wav", speech_like(SECONDS), 44100)
    secret = root / "secret.wav"
    sf.write(secret, speech_like(SECONDS, seed=7) * 0.5, 44100)
    os.symlink(secret, folder / "link-out.wav")
    site = build_site([folder], None)
    server = ListenServer(site)
    server.serve_in_thread()
    yield server, secret
    server.shutdown()
    server.server_close()


def get(server: ListenServer, path: str, host: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{server.server_address[1]}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_listens_on_loopback_only_with_an_unguessable_token(served) -> None:
    server, _ = served
    assert server.server_address[0] == "127.0.0.1"
    assert server.url.startswith(f"http://127.0.0.1:{server.server_address[1]}/")
    assert len(server.token) >= 32 and server.token != ListenServer.__name__
    status, body = get(server, f"/{server.token}/")
    assert status == 200 and b"apucodec listen" in body


@pytest.mark.parametrize("path", ["/", "/index.html", "/inputs.json", "/WRONGTOKEN/inputs.json", "/%s/inputs.json"])
def test_requests_without_the_token_are_refused(served, path: str) -> None:
    server, _ = served
    if "%s" in path:  # the token with its last character changed
        path = path % (server.token[:-1] + ("A" if server.token[-1] != "A" else "B"))
    assert get(server, path)[0] == 403


def test_a_foreign_host_header_is_refused(served) -> None:
    """DNS rebinding: another site's name resolving to 127.0.0.1 must not reach the page."""
    server, _ = served
    assert get(server, f"/{server.token}/inputs.json", host="evil.example:80")[0] == 403


@pytest.mark.parametrize("route", [
    "../secret.wav", "input/0/../../../secret.wav", "%2e%2e/secret.wav", "%2E%2E%2Fsecret.wav",
    "input/0/..%2f..%2finputs.json", "model/../manifest.json", "model/%2e%2e%2fmanifest.json",
    "model/encoder.s4.onnx", "model/MODEL.md", "/etc/passwd", "%2fetc%2fpasswd", "input/0/info.json%00",
    "input/0%00/info.json", "%00", "input/1/info.json", "input/00/info.json", "input/-1/info.json",
    "input/0/decoded-9.wav", "input/0/decoded-0.wav", "web/index.html", "ort/ort-wasm-simd-threaded.asyncify.wasm.xz",
    "..\\..\\secret.wav", "input/0/original.wav/..", "%ff%fe",
])
def test_paths_outside_the_page_are_refused(served, route: str) -> None:
    server, secret = served
    status, body = get(server, f"/{server.token}/{route}")
    assert status in (403, 404), (route, status)
    assert secret.read_bytes()[:1000] not in body


def test_a_symlink_out_of_the_folder_is_not_listed(served) -> None:
    server, _ = served
    status, body = get(server, f"/{server.token}/inputs.json")
    assert status == 200
    assert [item["name"] for item in json.loads(body)["inputs"]] == ["clip.wav"]


def test_the_page_routes_serve_what_the_browser_needs(served) -> None:
    server, _ = served
    base = f"/{server.token}/"
    info = json.loads(get(server, base + "input/0/info.json")[1])
    assert info["n_codebooks"] == 8 and info["has_original"]
    assert [level["n"] for level in info["levels"]] == list(range(1, 9))
    kbps = [level["kbps"] for level in info["levels"]]
    assert kbps == pytest.approx([n * 11 * 44100 / 512 / 1000 for n in range(1, 9)])
    assert all(level["si_sdr"] is not None and level["mel_distance"] is not None for level in info["levels"])
    status, apc = get(server, base + "input/0/codes.apc")
    assert status == 200 and apc[:4] == b"APC\x1a"
    status, f32 = get(server, base + "input/0/decoded-8.f32")
    assert status == 200 and len(f32) == 4 * int(SECONDS * 44100)
    for picture in ("original-spec.png", "decoded-3-spec.png", "diff-3.png", "decoded-1-wave.png",
                    "original-spec-low.png", "decoded-8-spec-low.png", "diff-1-low.png"):
        status, png = get(server, base + "input/0/" + picture)
        assert status == 200 and png.startswith(b"\x89PNG")
    manifest = json.loads(get(server, base + "model/manifest.json")[1])
    graph = manifest["files"]["decoder.s4"]["name"]
    status, body = get(server, base + f"model/{graph}")
    assert status == 200 and hashlib.sha256(body).hexdigest() == manifest["files"]["decoder.s4"]["sha256"]
    status, wasm = get(server, base + "ort/ort-wasm-simd-threaded.asyncify.wasm")
    assert status == 200 and wasm[:4] == b"\0asm"
    assert hashlib.sha256(wasm).hexdigest() == vendor.FILES["ort/ort-wasm-simd-threaded.asyncify.wasm"][1]


def test_external_data_named_in_the_manifest_is_served() -> None:
    """A step graph whose weights live in an ONNX external-data file: the file is one the browser may fetch."""
    from apucodec.tools.listen.site import browser_model_files

    manifest = {"files": {
        "decoder.s4": {"name": "decoder.s4.onnx", "stage": "decoder", "precision": "fp32",
                       "external_data": ["decoder.weights"]},
        "decoder.s128": {"name": "decoder.s128.onnx", "stage": "decoder", "precision": "fp32",
                         "weights": {"name": "../escape.weights"}},
        "encoder.s4": {"name": "encoder.s4.onnx", "stage": "encoder", "precision": "fp32",
                       "external_data": "encoder.weights"},
        "codebooks": {"name": "codebooks.npy", "role": "codebooks"}}}
    assert browser_model_files(manifest) == ["decoder.s4.onnx", "decoder.weights", "decoder.s128.onnx",
                                             "codebooks.npy"]


def _read_png(data: bytes) -> np.ndarray:
    """Our encoder's output read back by the format's rules (chunks, CRCs, filter 0 scanlines)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos: pos + 4])
        kind, body = data[pos + 4: pos + 8], data[pos + 8: pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length: pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


def test_png_encoder_round_trips() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (7, 13, 3), dtype=np.uint8)
    assert np.array_equal(_read_png(encode_png(image)), image)
    with pytest.raises(ValueError):
        encode_png(np.zeros((0, 4, 3), np.uint8))


def test_export_writes_the_page_as_a_static_folder(tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    sf.write(clip, speech_like(SECONDS), 44100)
    out = tmp_path / "report"
    result = invoke("listen", str(clip), "--export", str(out))
    assert result.exit_code == 0, result.output
    for route in ("index.html", "listen.js", "decode.js", "apc.js", "inputs.json", "model/manifest.json",
                  "model/decoder.s4.onnx", "model/codebooks.npy", "input/0/codes.apc", "input/0/diff-8.png",
                  "input/0/decoded-1.wav", "ort/ort.webgpu.bundle.min.mjs"):
        assert (out / route).is_file(), route
    wasm = (out / "ort/ort-wasm-simd-threaded.asyncify.wasm").read_bytes()
    assert hashlib.sha256(wasm).hexdigest() == vendor.FILES["ort/ort-wasm-simd-threaded.asyncify.wasm"][1]
    assert not (out / "model/encoder.s4.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.wav", "report"]  # no staging folder left
    again = invoke("listen", str(clip), "--export", str(out))
    assert_one_line_error(again, str(out), "already exists")


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    assert_one_line_error(invoke("listen", str(tmp_path / "missing.wav")), "missing.wav", "no such file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(invoke("listen", str(empty)), "no audio or .apc files")
    broken = tmp_path / "broken.apc"
    broken.write_bytes(b"APC\x1a" + b"\0" * 10)
    assert_one_line_error(invoke("listen", str(broken), "--export", str(tmp_path / "r")), "broken.apc")
    assert not (tmp_path / "r").exists()


def test_players_can_ask_for_byte_ranges(served) -> None:
    server, _ = served
    route = f"/{server.token}/input/0/decoded-2.wav"
    whole = get(server, route)[1]
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    try:
        connection.request("GET", route, headers={"Range": "bytes=10-19"})
        response = connection.getresponse()
        assert response.status == 206 and response.read() == whole[10:20]
        assert response.getheader("Content-Range") == f"bytes 10-19/{len(whole)}"
    finally:
        connection.close()


def test_a_named_file_that_is_not_audio_is_a_one_line_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    assert_one_line_error(invoke("listen", str(text), "--export", str(tmp_path / "r")), "notes.txt",
                          "not readable audio")
    assert not (tmp_path / "r").exists()


def test_visqol_is_used_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's ViSQOL column: None without a `visqol` module; with visqol-python's API, its audio-mode MOS on
    48 kHz copies of both signals (a stand-in module records the call: the package is not a dependency)."""
    import sys
    import types

    from apucodec.tools.listen.inputs import visqol_mos

    x = speech_like(0.2)
    monkeypatch.setitem(sys.modules, "visqol", None)
    assert visqol_mos(x, x, 44100) is None
    calls = []

    class Api:
        def create(self, mode: str) -> None:
            calls.append(mode)

        def measure_from_arrays(self, ref: np.ndarray, deg: np.ndarray, rate: int) -> types.SimpleNamespace:
            calls.append((ref.size, deg.size, rate))
            return types.SimpleNamespace(moslqo=4.25)

    package, api = types.ModuleType("visqol"), types.ModuleType("visqol.api")
    api.VisqolApi = Api
    monkeypatch.setitem(sys.modules, "visqol", package)
    monkeypatch.setitem(sys.modules, "visqol.api", api)
    assert visqol_mos(x, x, 44100) == 4.25
    assert calls == ["audio", (int(0.2 * 48000), int(0.2 * 48000), 48000)]


def test_an_apc_input_is_decoded_without_an_original(tmp_path: Path) -> None:
    from apucodec.tools.listen.build import open_codec

    codec = open_codec(None)
    codes = codec.encode(speech_like(SECONDS), 44100, n_codebooks=3)
    codes.save(tmp_path / "clip.apc")
    out = tmp_path / "report"
    result = invoke("listen", str(tmp_path / "clip.apc"), "--export", str(out))
    assert result.exit_code == 0, result.output
    info = json.loads((out / "input/0/info.json").read_text())
    assert info["has_original"] is False and [level["n"] for level in info["levels"]] == [1, 2, 3]
    assert (out / "input/0/codes.apc").read_bytes() == (tmp_path / "clip.apc").read_bytes()
    assert (out / "input/0/decoded-3-spec.png").is_file()
    assert not list((out / "input/0").glob("original*")) and not list((out / "input/0").glob("diff-*"))
    other = bytearray((tmp_path / "clip.apc").read_bytes())
    other[44:60] = b"0123456789abcdef"  # another model's id (the CRC is not reached: the id is checked first)
    (tmp_path / "other.apc").write_bytes(bytes(other))
    assert_one_line_error(invoke("listen", str(tmp_path / "other.apc")), "other.apc", "0123456789abcdef")
