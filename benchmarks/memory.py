"""Peak RSS of `apucodec run` on 10 s vs 10 min of audio: memory must be bounded by the queues, not the file.

    python benchmarks/memory.py --model apucodec-model [--seconds 10 600] [--threads N]

Each length runs as a fresh `apucodec run` process on a generated WAV (written one second at a time, never held
whole), and its peak RSS is the kernel's record for that process (wait4's ru_maxrss): sessions, arenas, queues,
buffers — everything. Prints each run's peak RSS, wall time and RTF, and the ratio of each peak to the first
(the target: 10 min within 1.2x of 10 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_run import run_once, write_clip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 600.0])
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    extra = ["--threads", str(args.threads), "--encoder-ep", "cpu", "--decoder-ep", "cpu"]
    print(f"{'audio s':>8} {'peak RSS MB':>12} {'vs first':>9} {'process wall s':>15} {'RTF':>7}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            clip = Path(tmp) / f"clip{seconds:g}.wav"
            write_clip(clip, seconds)
            wall, rss, _ = run_once(args.model, clip, Path(tmp) / "out.wav", extra)
            first = first or rss
            print(f"{seconds:8.1f} {rss / 2**20:12.1f} {rss / first:8.3f}x {wall:15.2f} {wall / seconds:7.3f}",
                  flush=True)
            clip.unlink()


if __name__ == "__main__":
    main()
