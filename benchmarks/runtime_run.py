"""Wall time, real-time factor and peak RSS of `apucodec run` on generated clips of given lengths.

    python benchmarks/runtime_run.py --model apucodec-model --seconds 10 600 [--ep cpu] [--threads N]

Each run is a fresh `apucodec run` process (what a user runs), so its peak RSS is the whole program's: model
sessions, queues and buffers. Memory must not grow with the clip's length (the pipeline streams from and to disk),
so the 600 s figure should match the 10 s one. The clip is written in one-second blocks and never held whole.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 44100


def write_clip(path: Path, seconds: float) -> None:
    """Speech-band tones with a slowly moving pitch and some noise, one second at a time."""
    rng = np.random.default_rng(0)
    total = int(seconds * RATE)
    with sf.SoundFile(path, "w", RATE, 1, "PCM_16") as fh:
        for start in range(0, total, RATE):
            n = min(RATE, total - start)
            t = (start + np.arange(n)) / RATE
            f0 = 150 + 60 * np.sin(2 * np.pi * 0.2 * t)
            x = 0.25 * np.sin(2 * np.pi * np.cumsum(f0) / RATE) + 0.02 * rng.standard_normal(n)
            fh.write(x.astype(np.float32))


def run_once(model: str, clip: Path, out: Path, extra: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout: the summary line, then the placement report if asked for)."""
    command = [sys.executable, "-c", "from apucodec.cli.main import main; main()", "run", str(clip), str(out),
               "--model", model, *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"apucodec run failed:\n{stderr}")
    return wall, usage.ru_maxrss * 1024, stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 600.0])
    parser.add_argument("--ep", default=None, help="Both stages on this EP (e.g. cpu); default: the built-in order.")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--report", action="store_true", help="Print each run's placement report too.")
    args = parser.parse_args()
    extra = ["--threads", str(args.threads)] + (["--report"] if args.report else [])
    if args.ep:
        extra += ["--encoder-ep", args.ep, "--decoder-ep", args.ep]
    print(f"{'audio s':>8} {'process wall s':>15} {'RTF':>7} {'peak RSS MB':>12}  pipeline summary")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            clip = Path(tmp) / f"clip{seconds:g}.wav"
            write_clip(clip, seconds)
            wall, rss, summary = run_once(args.model, clip, Path(tmp) / "out.wav", extra)
            print(f"{seconds:8.1f} {wall:15.2f} {wall / seconds:7.3f} {rss / 2**20:12.1f}  {summary}", flush=True)
            clip.unlink()


if __name__ == "__main__":
    main()
