"""The CLI as a process: signals mid-run, `ulimit -f`, a full filesystem, pipes, devices, FIFOs, the umask, memory.

Each refusal asserts the battery's contract (non-zero exit, one stderr line naming the file and the cause, no
traceback, nothing left in the output folder, input unchanged); SIGKILL asserts the part a killed process can keep:
the output folder is empty, because the output was an unnamed O_TMPFILE until the very end.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apucodec.contract.config import bits_per_code as bits_for
from apucodec.io.apc_header import HEADER_V1 as HEADER
from apucodec.io.apc_header import MAGIC
from apucodec.io.apc_reader import parse_apc
from apucodec.io.apc_writer import BitPacker
from tests.audio_factory import tone
from tests.cli_helpers import CPU
from tests.refusal_helpers import digest, listing, writing_into

LONG_SECONDS = 240
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def write_apc(path: Path, model_id: str, seconds: float, block_frames: int = 1 << 16) -> None:
    """A valid .apc of `seconds` of random codes for the tiny model, written directly (no encoder run)."""
    length = int(seconds * 44100)
    frames = -(-length // 512)
    rng = np.random.default_rng(0)
    packer = BitPacker(bits_for(64))
    header = HEADER.pack(MAGIC, 1, 72, 44100, 44100, 4, 6, 0, 64, 512, frames, length,
                         model_id.encode().ljust(16, b"\0"), length, 0)
    crc = zlib.crc32(header)
    with open(path, "wb") as fh:
        fh.write(header)
        for start in range(0, frames, block_frames):
            data = packer.pack(rng.integers(0, 64, size=(min(block_frames, frames - start), 4)))
            fh.write(data)
            crc = zlib.crc32(data, crc)
        tail = packer.flush()
        fh.write(tail + struct.pack("<I", zlib.crc32(tail, crc)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, runtime_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("process_inputs")
    with sf.SoundFile(root / "long.wav", "w", 44100, 1, "PCM_16") as fh:
        for i in range(LONG_SECONDS):
            fh.write(tone(1.0, 100 + 3 * i))
    sf.write(root / "short.wav", tone(2.0, 330.0), 44100)
    model_id = json.loads((runtime_model / "manifest.json").read_text())["model_id"]
    write_apc(root / "long.apc", model_id, LONG_SECONDS)
    write_apc(root / "ten.apc", model_id, 10)
    return {"long.wav": root / "long.wav", "short.wav": root / "short.wav", "long.apc": root / "long.apc",
            "ten.apc": root / "ten.apc", "root": root, "model_id": model_id}  # type: ignore[dict-item]


def private_null(path: Path) -> None:
    """A character device node like /dev/null (1, 3) in a temp folder; needs CAP_MKNOD (root, as CI runs)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root (CAP_MKNOD)")


def command(model: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "apucodec", *args, "--model", str(model), *CPU]


def one_error_line(stderr: str, *fragments: str, prefix: str = "error: ") -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), stderr
    assert "Traceback" not in stderr and "terminate called" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _restore_sigint() -> None:
    # A shell that starts CI in the background hands its children SIGINT ignored; restore the default so Python
    # installs its KeyboardInterrupt handler, as it does for a user at a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ---- signals mid-run -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sig", "verb"), [(signal.SIGTERM, "run"), (signal.SIGTERM, "decode"),
                                           (signal.SIGKILL, "run"), (signal.SIGKILL, "encode"),
                                           (signal.SIGKILL, "decode"), (signal.SIGINT, "encode")])
def test_signal_mid_run_leaves_nothing(sig, verb, inputs, runtime_model, tmp_path):
    source = inputs["long.apc"] if verb == "decode" else inputs["long.wav"]
    target = tmp_path / ("out.apc" if verb == "encode" else "out.wav")
    before = digest(source)
    proc = subprocess.Popen(command(runtime_model, verb, str(source), str(target)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=_restore_sigint)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not writing_into(proc.pid, tmp_path) and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert listing(tmp_path) == [], listing(tmp_path)
    assert digest(source) == before
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    elif sig == signal.SIGTERM:
        assert proc.returncode == 143, stderr
        one_error_line(stderr, "no output was written", prefix="terminated (SIGTERM)")
    else:
        assert proc.returncode == 130, stderr
        one_error_line(stderr, "no output was written", prefix="interrupted")


# ---- file-size limit and full filesystem -----------------------------------------------------------------------------

@pytest.mark.parametrize(("verb", "limit"), [("run", 200_000), ("decode", 200_000), ("encode", 20_000)])
def test_file_size_limit(verb, limit, inputs, runtime_model, tmp_path):
    source = inputs["long.apc"] if verb == "decode" else inputs["long.wav"]
    target = tmp_path / ("out.apc" if verb == "encode" else "out.wav")

    def limit_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(command(runtime_model, verb, str(source), str(target)), capture_output=True, text=True,
                          env=ENV, preexec_fn=limit_size, timeout=300)
    assert proc.returncode == 1, proc.stderr
    one_error_line(proc.stderr, str(target), "File too large")
    assert listing(tmp_path) == []


@pytest.fixture()
def small_tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); ulimit -f covers the write path")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("verb", ["run", "decode"])
def test_full_filesystem(verb, small_tmpfs, inputs, runtime_model):
    source = inputs["long.apc"] if verb == "decode" else inputs["long.wav"]
    target = small_tmpfs / "out.wav"
    proc = subprocess.run(command(runtime_model, verb, str(source), str(target)), capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode == 1, proc.stderr
    one_error_line(proc.stderr, str(target), "No space left on device")
    assert listing(small_tmpfs) == []
    assert os.statvfs(small_tmpfs).f_bfree == os.statvfs(small_tmpfs).f_blocks  # the unnamed temp is gone too


# ---- pipes, devices, FIFOs, umask ------------------------------------------------------------------------------------

def test_stdout_and_stdin(inputs, runtime_model, tmp_path):
    short = inputs["short.wav"]
    run = subprocess.run(command(runtime_model, "run", str(short), "-"), capture_output=True, env=ENV, timeout=120)
    assert run.returncode == 0, run.stderr
    audio, rate = sf.read(io.BytesIO(run.stdout), dtype="float32")
    assert rate == 44100 and audio.shape == (sf.info(short).frames,)
    assert b"run:" in run.stderr and b"<stdout>" in run.stderr  # the summary moved to stderr
    enc = subprocess.run(command(runtime_model, "encode", "-", "-"), input=short.read_bytes(), capture_output=True,
                         env=ENV, timeout=120)
    assert enc.returncode == 0, enc.stderr
    header, codes = parse_apc(enc.stdout)
    assert header.original_length == sf.info(short).frames and codes.shape[0] == 4
    dec = subprocess.run(command(runtime_model, "decode", "-", str(tmp_path / "d.wav")), input=enc.stdout,
                         capture_output=True, env=ENV, timeout=120)
    assert dec.returncode == 0, dec.stderr
    np.testing.assert_array_equal(sf.read(tmp_path / "d.wav", dtype="int16")[0],
                                  sf.read(io.BytesIO(run.stdout), dtype="int16")[0])
    assert listing(tmp_path) == ["d.wav"]


def test_broken_pipe_is_one_line(inputs, runtime_model):
    proc = subprocess.Popen(command(runtime_model, "run", str(inputs["long.wav"]), "-"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    proc.stdout.read(1000)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    one_error_line(stderr, "<stdout>", "Broken pipe")


def test_device_output_is_written_not_replaced(inputs, runtime_model, tmp_path):
    null = tmp_path / "null"
    private_null(null)  # a private /dev/null: the real one is never touched
    proc = subprocess.run(command(runtime_model, "run", str(inputs["short.wav"]), str(null)), capture_output=True,
                          text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = os.stat(null)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)
    assert listing(tmp_path) == ["null"]


def test_fifo_output_streams(inputs, runtime_model, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = bytearray()

    def reader() -> None:
        with open(fifo, "rb") as fh:
            received.extend(fh.read())

    thread = threading.Thread(target=reader)
    thread.start()
    proc = subprocess.run(command(runtime_model, "run", str(inputs["short.wav"]), str(fifo)), capture_output=True,
                          text=True, env=ENV, timeout=120)
    thread.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    audio, _ = sf.read(io.BytesIO(bytes(received)), dtype="float32")
    assert audio.shape == (sf.info(inputs["short.wav"]).frames,)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and listing(tmp_path) == ["fifo"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_honour_the_umask(umask, mode, inputs, runtime_model, tmp_path):
    proc = subprocess.run(command(runtime_model, "encode", str(inputs["short.wav"]), str(tmp_path / "x.apc")),
                          capture_output=True, text=True, env=ENV, timeout=120, preexec_fn=lambda: os.umask(umask))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "x.apc").st_mode) == mode


# ---- memory ----------------------------------------------------------------------------------------------------------

# The child is started by a minimal launcher process, not by this one: Linux counts the memory a child had at
# fork/exec (a copy of its parent's) in its ru_maxrss, so a child forked from pytest or a NumPy-loaded script would
# report its parent's size. The launcher (a bare `python -S`, ~10 MB) waits for the real command and prints its
# wait4 rusage.
PEAK_LAUNCHER = ("import os, subprocess, sys\n"
                 "p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)\n"
                 "_, status, usage = os.wait4(p.pid, 0)\n"
                 "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')\n")


def peak_rss_kib(cmd: list[str]) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in KiB) of one command, from wait4's rusage in a minimal launcher."""
    report = Path(os.environ.get("TMPDIR", "/tmp")) / f"peak-{os.getpid()}-{time.monotonic_ns()}"
    try:
        proc = subprocess.run([sys.executable, "-S", "-c", PEAK_LAUNCHER, str(report), *cmd], env=ENV,
                              stderr=subprocess.PIPE, text=True, timeout=3600)
        code, rss = (int(v) for v in report.read_text().split())
    finally:
        report.unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr
    return code, proc.stderr, rss


def test_header_bomb_is_refused_in_bounded_memory(inputs, runtime_model, tmp_path):
    """An .apc of 1 KB claiming an input length of 2**62 samples: refused from the header, at a valid file's memory."""
    bomb = tmp_path / "bomb.apc"
    header = bytearray((inputs["ten.apc"]).read_bytes()[:72])
    struct.pack_into("<Q", header, 60, 2**62)
    body = bytes(header) + bytes(1000)
    bomb.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    null = tmp_path / "null"
    private_null(null)
    rc, stderr, bomb_rss = peak_rss_kib(command(runtime_model, "decode", str(bomb), str(null), "--match-input"))
    assert rc == 1
    one_error_line(stderr, "bomb.apc", "not a valid .apc file")
    rc, stderr, valid_rss = peak_rss_kib(command(runtime_model, "decode", str(inputs["ten.apc"]), str(null)))
    assert rc == 0, stderr
    print(f"peak RSS: header bomb refused {bomb_rss / 1024:.0f} MiB, valid 10 s decode {valid_rss / 1024:.0f} MiB")
    assert bomb_rss <= 1.2 * valid_rss


def test_six_hour_file_of_another_model_is_refused_from_its_header(inputs, runtime_model, tmp_path):
    six = tmp_path / "six_hours.apc"
    write_apc(six, "feedfacefeedface", 6 * 3600)
    null = tmp_path / "null"
    private_null(null)
    rc, stderr, six_rss = peak_rss_kib(command(runtime_model, "decode", str(six), str(null)))
    assert rc == 1
    one_error_line(stderr, "six_hours.apc", "made by model feedfacefeedface")
    rc, _, ten_rss = peak_rss_kib(command(runtime_model, "decode", str(inputs["ten.apc"]), str(null)))
    assert rc == 0 and six_rss <= 1.2 * ten_rss, (six_rss, ten_rss)


@pytest.mark.slow
def test_six_hour_decode_memory_matches_ten_seconds(inputs, runtime_model, tmp_path):
    """Decoding streams: six hours of codes peak within 1.2x of ten seconds' RSS (output to a private null device)."""
    six = tmp_path / "six_hours.apc"
    write_apc(six, inputs["model_id"], 6 * 3600)  # type: ignore[arg-type]
    null = tmp_path / "null"
    private_null(null)
    rc, stderr, ten_rss = peak_rss_kib(command(runtime_model, "decode", str(inputs["ten.apc"]), str(null)))
    assert rc == 0, stderr
    rc, stderr, six_rss = peak_rss_kib(command(runtime_model, "decode", str(six), str(null)))
    assert rc == 0, stderr
    print(f"peak RSS: 6 h decode {six_rss / 1024:.0f} MiB, 10 s decode {ten_rss / 1024:.0f} MiB, "
          f"ratio {six_rss / ten_rss:.3f}")
    assert six_rss <= 1.2 * ten_rss
