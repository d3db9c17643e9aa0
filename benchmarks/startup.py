"""Start-up of `apucodec run` on a short clip: no cache vs the user cache cold and warm, side by side.

    python benchmarks/startup.py --model DIR [--seconds 1] [--repeats 3]

Each measurement is a fresh `python -m apucodec run clip.wav out.wav --model DIR` process (imports, the model's
file checks, session creation, every step of the clip through both stages, writing the output), timed from
outside, in three variants interleaved round by round so machine load hits them alike:

* no cache: APUCODEC_CACHE_DIR points at a file, so nothing can be cached (every file hashed, every graph
  optimized), which is how every run started before the cache;
* cold: an empty cache folder, so the run hashes and optimizes and also writes the records and optimized graphs;
* warm: the same folder again, now filled: unchanged files are not hashed, graphs load already optimized.

Inside each child, the time spent checking the model's files and creating sessions is measured too, so the part of
start-up the caches can touch is shown next to the total.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

CHILD = r"""
import json, sys, time
from pathlib import Path
started = time.perf_counter()
import onnxruntime as ort
from apucodec.model import directory as model_dir
report = sys.argv[1]
sys.argv = ["apucodec"] + sys.argv[2:]
spent = {"verify_s": 0.0, "sessions_s": 0.0}
Original, verify = ort.InferenceSession, model_dir.ModelDir.verify

class Timed(Original):
    def __init__(self, *args, **kwargs):
        t = time.perf_counter()
        super().__init__(*args, **kwargs)
        spent["sessions_s"] += time.perf_counter() - t

def timed_verify(self, *args, **kwargs):
    t = time.perf_counter()
    try:
        return verify(self, *args, **kwargs)
    finally:
        spent["verify_s"] += time.perf_counter() - t

ort.InferenceSession, model_dir.ModelDir.verify = Timed, timed_verify
from apucodec.cli.main import cli
try:
    cli(standalone_mode=False)
finally:
    spent["in_process_s"] = time.perf_counter() - started
    Path(report).write_text(json.dumps(spent))
"""


def one_run(model: str, clip: Path, out: Path, cache: Path) -> dict[str, float]:
    env = dict(os.environ, APUCODEC_CACHE_DIR=str(cache))
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        report = Path(fh.name)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(report), "run", str(clip), str(out), "--model", model],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"apucodec run failed: {proc.stderr.strip().splitlines()[-1:]}")
    data = json.loads(report.read_text())
    report.unlink()
    return {"wall_s": wall, **data}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="apucodec-startup-"))
    clip, out = work / "clip.wav", work / "out.wav"
    n = int(args.seconds * 44100)
    rng = np.random.default_rng(0)
    sf.write(clip, (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100) + 0.02 * rng.standard_normal(n))
             .astype(np.float32), 44100)
    blocked = work / "no-cache"
    blocked.write_text("a file, so no cache folder can be made here")
    rows: dict[str, list[dict[str, float]]] = {"no cache": [], "cold": [], "warm": []}
    for r in range(args.repeats):
        cache = work / f"cache{r}"
        rows["no cache"].append(one_run(args.model, clip, out, blocked))
        rows["cold"].append(one_run(args.model, clip, out, cache))
        rows["warm"].append(one_run(args.model, clip, out, cache))
    print(f"apucodec run on a {args.seconds:g} s clip, model {args.model}; {args.repeats} rounds, variants "
          f"interleaved; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'variant':<10} {'wall s (median)':>16} {'min':>7} {'max':>7} {'file checks s':>14} {'sessions s':>11}")
    med = {name: {k: statistics.median(x[k] for x in runs) for k in runs[0]} for name, runs in rows.items()}
    for name, runs in rows.items():
        walls = [x["wall_s"] for x in runs]
        print(f"{name:<10} {med[name]['wall_s']:16.2f} {min(walls):7.2f} {max(walls):7.2f} "
              f"{med[name]['verify_s']:14.2f} {med[name]['sessions_s']:11.2f}")
    plain, warm = med["no cache"], med["warm"]
    print(f"warm vs no cache: start-up {plain['wall_s'] / warm['wall_s']:.2f}x faster "
          f"({plain['wall_s'] - warm['wall_s']:+.2f} s); "
          f"file checks {plain['verify_s']:.2f} -> {warm['verify_s']:.2f} s, "
          f"sessions {plain['sessions_s']:.2f} -> {warm['sessions_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
