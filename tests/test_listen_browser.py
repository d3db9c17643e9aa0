"""`apucodec listen` in headless Chromium: the page decodes an .apc in the browser (onnxruntime-web, WASM) and its
samples match the Python decode; a screenshot shows the spectrograms.

Chromium is driven over the DevTools protocol's pipe (tests/cdp_pipe.py). CI installs Debian's `chromium`
(.ci/run); elsewhere the test is skipped when no Chromium is installed, and fails under CI=true.
"""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apucodec.codes import Codes
from apucodec.tools.listen.build import open_codec
from tests.audio_factory import speech_like
from tests.cdp_pipe import FLAGS, Browser, find_chromium

MAX_ABS_ERROR = 1e-4
SECONDS = 0.5
# The page's decode hook, its samples as base64 float32 (JSON numbers would be slow and lossy to compare).
DECODE = """window.apucodecListen.decoders[0]({n: %d, step: %d, backend: '%s'}).then(r => {
  const bytes = new Uint8Array(r.samples.buffer, r.samples.byteOffset, r.samples.byteLength);
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return {...r, samples: btoa(text)};
})"""


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Chromium for the listening page test (.ci/run installs Debian's chromium)")
        pytest.skip("no Chromium installed (apt-get install chromium)")
    return found


def loopback_listeners(pid: int) -> set[str]:
    """Local addresses of the process's listening TCP sockets (from /proc: its inodes, then /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN
                found.add(fields[1].split(":")[0])
    return found


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("listen-browser")
    clip = folder / "clip.wav"
    sf.write(clip, speech_like(SECONDS), 44100)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "apucodec", "listen", str(clip)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/[A-Za-z0-9_-]+/)", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        yield match.group(1), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_listen_binds_loopback_only(page) -> None:
    url, process = page
    assert loopback_listeners(process.pid) == {"0100007F"}  # 127.0.0.1, and nothing else


def test_browser_decode_matches_python_and_spectrograms_show(page, chromium: str, tmp_path: Path) -> None:
    from PIL import Image

    url, _ = page
    browser = Browser(chromium)
    try:
        browser.open(url)
        state = browser.wait_for("window.apucodecListen && (window.apucodecListen.ready || "
                                 "window.apucodecListen.error || false) && window.apucodecListen", timeout=180)
        assert state["ready"] and state["error"] is None, state
        # Python's decode of the same .apc the page fetched, at the codebook counts the browser decodes.
        apc = browser.evaluate("fetch('input/0/codes.apc').then(r => r.arrayBuffer()).then(b => "
                               "btoa(String.fromCharCode(...new Uint8Array(b))))")
        apc_path = tmp_path / "codes.apc"
        apc_path.write_bytes(base64.b64decode(apc))
        codes = Codes.load(apc_path)
        codec = open_codec(None)
        for n, step in ((8, 4), (3, 128)):
            started = time.monotonic()
            result = browser.evaluate(DECODE % (n, step, "wasm"), timeout=300)
            samples = np.frombuffer(base64.b64decode(result["samples"]), dtype="<f4")
            part = Codes(codes.array[:n], codes.length, codes.sample_rate, codes.input_rate, codes.input_length,
                         codes.model_id)
            expected = codec.decode(part)
            assert samples.shape == expected.shape == (int(SECONDS * 44100),)
            error = float(np.max(np.abs(samples - expected)))
            print(f"[listen] {n} codebooks, {step}-frame steps: backend {result['backend']}, threads "
                  f"{result['threads']}, {result['steps']} steps, per step ms {np.round(result['stepMs'], 1).tolist()}"
                  f", session {result['openMs']:.0f} ms, max abs error vs Python {error:.3g} "
                  f"({time.monotonic() - started:.1f} s)")
            assert result["backend"] == "wasm" and result["steps"] >= 1
            assert len(result["stepMs"]) == result["steps"]
            assert error <= MAX_ABS_ERROR, error
            assert float(np.max(np.abs(expected))) > 1e-3  # not two silent signals agreeing
        # A corrupted file is refused by the page's parser, not decoded into noise.
        message = browser.evaluate("import('./apc.js').then(m => fetch('input/0/codes.apc').then(r => r.arrayBuffer())"
                                   ".then(b => { const u = new Uint8Array(b); u[80] ^= 1; try { m.parseApc(b); "
                                   "return 'parsed'; } catch (e) { return e.message; } }))")
        assert "CRC32 mismatch" in message
        # The screenshot shows the spectrograms: their regions are not blank.
        rects = browser.evaluate("[...document.querySelectorAll('img.spectrogram')].map(i => { "
                                 "const r = i.getBoundingClientRect(); return [r.left, r.top + scrollY, r.width, "
                                 "r.height, i.complete && i.naturalWidth > 0]; })")
        assert len(rects) == 3 and all(r[4] for r in rects), rects  # original, decoded, difference
        shot = browser.screenshot(tmp_path / "listen.png")
    finally:
        browser.close()
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.float64)
    for left, top, width, height, _ in rects:
        region = image[int(top) + 2: int(top + height) - 2, int(left) + 2: int(left + width) - 2]
        assert region.size and region.std() > 10.0, (left, top, region.std() if region.size else None)


@pytest.mark.slow
def test_exported_page_decodes_under_a_plain_static_server(chromium: str, tmp_path: Path) -> None:
    """`--export` + `python -m http.server`: the browser decode still works (one WASM thread: no COOP/COEP);
    opened as file://, the page's module scripts are refused by the browser (what docs/listen.md says)."""
    clip = tmp_path / "clip.wav"
    sf.write(clip, speech_like(SECONDS), 44100)
    report = tmp_path / "report"
    subprocess.run([sys.executable, "-m", "apucodec", "listen", str(clip), "--export", str(report)], check=True,
                   capture_output=True)
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"], cwd=report,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    browser = Browser(chromium)
    try:
        port = re.search(r"port (\d+)", server.stdout.readline()).group(1)
        browser.open(f"http://127.0.0.1:{port}/index.html")
        browser.wait_for("window.apucodecListen && window.apucodecListen.ready", timeout=180)
        result = browser.evaluate(DECODE % (8, 128, "wasm"), timeout=300)
        samples = np.frombuffer(base64.b64decode(result["samples"]), dtype="<f4")
        expected = np.fromfile(report / "input/0/decoded-8.f32", dtype="<f4")
        assert result["threads"] == 1 and result["backend"] == "wasm"
        assert float(np.max(np.abs(samples - expected))) <= MAX_ABS_ERROR
        browser.send("Page.navigate", {"url": (report / "index.html").as_uri()})
        time.sleep(3)
        assert browser.evaluate("typeof window.apucodecListen") == "undefined"
        assert browser.evaluate("document.querySelectorAll('#inputs p').length") == 1  # still "Loading…"
    finally:
        browser.close()
        server.terminate()
        server.wait()
        server.stdout.close()


# WebGPU on Chromium's own software Vulkan (SwiftShader): no GPU needed, but seconds per step, hence slow.
SWIFTSHADER = [f for f in FLAGS if f != "--disable-gpu"] + [
    "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader",
    "--use-webgpu-adapter=swiftshader", "--use-angle=swiftshader"]


@pytest.mark.slow
def test_browser_decode_on_webgpu_matches_python(page, chromium: str) -> None:
    """The same decode on onnxruntime-web's WebGPU backend (SwiftShader's adapter) matches the Python decode."""
    url, _ = page
    browser = Browser(chromium, flags=SWIFTSHADER, timeout=600)
    try:
        browser.open(url)
        browser.wait_for("window.apucodecListen && window.apucodecListen.ready", timeout=180)
        assert browser.evaluate("navigator.gpu.requestAdapter().then(a => a !== null)")
        result = browser.evaluate(DECODE % (2, 4, "webgpu"), timeout=600)
        reference = browser.evaluate("fetch('input/0/decoded-2.f32').then(r => r.arrayBuffer()).then(b => "
                                     "btoa(String.fromCharCode(...new Uint8Array(b))))")
    finally:
        browser.close()
    samples = np.frombuffer(base64.b64decode(result["samples"]), dtype="<f4")
    expected = np.frombuffer(base64.b64decode(reference), dtype="<f4")
    error = float(np.max(np.abs(samples - expected)))
    print(f"[listen] webgpu: {result['steps']} steps of 4 frames, per step ms "
          f"{np.round(result['stepMs'], 1).tolist()}, max abs error vs Python {error:.3g}")
    assert result["backend"] == "webgpu"
    assert samples.shape == expected.shape and error <= MAX_ABS_ERROR, error
