"""Start-up of `apucodec run` on a short clip: plain vs the optimized-graph cache, cold and warm, side by side.

    python benchmarks/startup.py --model DIR [--seconds 1] [--repeats 3]

Each measurement is a fresh `python -m apucodec run clip.wav out.wav --model DIR` process (imports, model checks,
session creation, the first window through every stage, writing the output), timed from outside, in three
variants interleaved round by round so machine load hits them alike:

* plain: the runtime as it is;
* cache cold: sessions go through apucodec.runtime.session_cache with an empty cache (optimize + save);
* cache warm: the same with the cache filled by the previous cold run (load the optimized graph, optimization off).

The runtime does not call the cache yet (session creation lives in runtime/providers.py), so the cache variants
install it in the child process by wrapping onnxruntime.InferenceSession: each graph path is looked up in the
model's manifest for its sha256 and routed through `cached_graph` exactly as providers.py would call it.
Inside each child, the time spent creating sessions is measured too, so the share of start-up the cache can
touch is visible next to the total.
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
import json, os, sys, time
from pathlib import Path
started = time.perf_counter()
import onnxruntime as ort
mode, model_dir, report = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
sys.argv = ["apucodec"] + sys.argv[4:]
manifest = json.loads((model_dir / "manifest.json").read_text())
shas = {str((model_dir / e["name"]).resolve()): e["sha256"] for e in manifest["files"].values()}
spent = {"create_s": 0.0, "hits": 0, "misses": 0}
Original = ort.InferenceSession

class Timed(Original):
    def __init__(self, path, sess_options=None, providers=None, **kw):
        t = time.perf_counter()
        key = str(Path(path).resolve()) if isinstance(path, (str, os.PathLike)) else None
        eps = [p if isinstance(p, str) else p[0] for p in (providers or [])]
        if mode != "plain" and key in shas and eps[:1] == ["CPUExecutionProvider"]:
            from apucodec.runtime.session_cache import cached_graph
            with cached_graph(key, shas[key], "CPUExecutionProvider") as graph:
                options = graph.apply(sess_options or ort.SessionOptions())
                super().__init__(str(graph.path), options, providers, **kw)
            spent["hits" if graph.hit else "misses"] += 1
        else:
            super().__init__(path, sess_options, providers, **kw)
        spent["create_s"] += time.perf_counter() - t

ort.InferenceSession = Timed
from apucodec.cli.main import cli
try:
    cli(standalone_mode=False)
finally:
    spent["in_process_s"] = time.perf_counter() - started
    Path(report).write_text(json.dumps(spent))
"""


def one_run(mode: str, model: str, clip: Path, out: Path, cache: Path) -> dict[str, float]:
    env = dict(os.environ, APUCODEC_CACHE_DIR=str(cache))
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        report = Path(fh.name)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, model, str(report), "run", str(clip), str(out),
                           "--model", model], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{mode}: apucodec run failed: {proc.stderr.strip().splitlines()[-1:]}")
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
    rows: dict[str, list[dict[str, float]]] = {"plain": [], "cache cold": [], "cache warm": []}
    for r in range(args.repeats):
        cache = work / f"cache{r}"
        rows["plain"].append(one_run("plain", args.model, clip, out, cache / "unused"))
        rows["cache cold"].append(one_run("cache", args.model, clip, out, cache))
        rows["cache warm"].append(one_run("cache", args.model, clip, out, cache))
    print(f"apucodec run on a {args.seconds:g} s clip, model {args.model}; {args.repeats} rounds, variants "
          f"interleaved; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'variant':<12} {'wall s (median)':>16} {'min':>7} {'max':>7} {'sessions s':>11} {'cache hits':>11}")
    for name, runs in rows.items():
        walls = [x["wall_s"] for x in runs]
        print(f"{name:<12} {statistics.median(walls):16.2f} {min(walls):7.2f} {max(walls):7.2f} "
              f"{statistics.median(x['create_s'] for x in runs):11.2f} "
              f"{int(statistics.median(x.get('hits', 0) for x in runs)):>11}")
    plain = statistics.median(x["wall_s"] for x in rows["plain"])
    warm = statistics.median(x["wall_s"] for x in rows["cache warm"])
    print(f"warm cache vs plain: {plain / warm:.2f}x start-up "
          f"(session creation {statistics.median(x['create_s'] for x in rows['plain']):.2f} s -> "
          f"{statistics.median(x['create_s'] for x in rows['cache warm']):.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
