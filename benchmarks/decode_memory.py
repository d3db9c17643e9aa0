"""Peak RSS of `apucodec decode` on 10 s vs 6 h of codes: decoding streams, so memory must not grow with the file.

    python benchmarks/decode_memory.py --model apucodec-model [--seconds 10 21600] [--threads N]

Each .apc is written directly (a valid header, random codes for the model's codebooks, the CRC), so no encoder run
is needed; each decode is a fresh process (started by a minimal launcher, see PEAK_LAUNCHER) writing to a private
null device (os.mknod, needs root; else a file in the temp folder), and its peak RSS is wait4's ru_maxrss. Prints
each run's peak RSS and wall time, and the ratio of each peak to the first (the target: 6 h within 1.2x of 10 s).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from apucodec.contract.config import bits_per_code as bits_for
from apucodec.io.apc_header import HEADER_V1 as HEADER
from apucodec.io.apc_header import MAGIC
from apucodec.io.apc_writer import BitPacker


def write_random_apc(path: Path, manifest: dict, seconds: float) -> None:
    codec, hop = manifest["codec"], manifest["window"]["hop"]
    rate, n, size = codec["sample_rate"], codec["n_codebooks"], codec["codebook_size"]
    length = int(seconds * rate)
    frames = -(-length // hop)
    packer, rng = BitPacker(bits_for(size)), np.random.default_rng(0)
    header = HEADER.pack(MAGIC, 1, 72, rate, rate, n, bits_for(size), 0, size, hop, frames, length,
                         manifest["model_id"].encode().ljust(16, b"\0"), length, 0)
    crc = zlib.crc32(header)
    with open(path, "wb") as fh:
        fh.write(header)
        for start in range(0, frames, 1 << 16):
            data = packer.pack(rng.integers(0, size, size=(min(1 << 16, frames - start), n)))
            fh.write(data)
            crc = zlib.crc32(data, crc)
        tail = packer.flush()
        fh.write(tail + struct.pack("<I", zlib.crc32(tail, crc)))


# The child is started by a minimal launcher process, not by this one: Linux counts the memory a child had at
# fork/exec (a copy of its parent's) in its ru_maxrss, so a child forked from pytest or a NumPy-loaded script would
# report its parent's size. The launcher (a bare `python -S`, ~10 MB) waits for the real command and prints its
# wait4 rusage.
PEAK_LAUNCHER = ("import os, subprocess, sys\n"
                 "p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)\n"
                 "_, status, usage = os.wait4(p.pid, 0)\n"
                 "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')\n")


def decode_once(model: str, apc: Path, out: Path, threads: int) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "apucodec", "decode", str(apc), str(out), "--model", model, "--decoder-ep", "cpu",
           "--threads", str(threads)]
    report = apc.with_suffix(".rss")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-S", "-c", PEAK_LAUNCHER, str(report), *cmd], stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    code, rss = (int(v) for v in report.read_text().split())
    if proc.returncode or code:
        raise SystemExit(proc.stderr.decode())
    return wall, rss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 6 * 3600.0])
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    manifest = json.loads((Path(args.model) / "manifest.json").read_text())
    print(f"{'audio s':>8} {'peak RSS MB':>12} {'vs first':>9} {'process wall s':>15}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "null"
        try:
            os.mknod(out, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            out = Path(tmp) / "out.wav"
        for seconds in args.seconds:
            apc = Path(tmp) / "codes.apc"
            write_random_apc(apc, manifest, seconds)
            wall, rss = decode_once(args.model, apc, out, args.threads)
            first = first or rss
            print(f"{seconds:8.0f} {rss / 2**20:12.1f} {rss / first:8.3f}x {wall:15.2f}", flush=True)
            apc.unlink()


if __name__ == "__main__":
    main()
