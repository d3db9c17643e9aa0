"""Live-stream latency per step size: `apucodec stream --realtime --json` on one clip, a row per step size.

    python benchmarks/stream_latency.py --model DIR --steps 1,2,4,16 [--seconds 60] [--input FILE]
    python benchmarks/stream_latency.py --checkpoint-preset default --steps 4,8,16 --seconds 60   # random weights

Each row: compute p50/p95 per step, end-to-end latency p50/p95/p99/max (oldest input sample of a step's output ->
output ready), the algorithmic latency from the manifest, and deadline misses (output later than one step period
after its input completed). Every step size runs in its own subprocess, one after the other, paced by the audio
clock, so a 60 s clip takes 60 s per row. With --checkpoint-preset the model is a random-weight export of that
preset at exactly the listed step sizes (made once into --work).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


def _clip(seconds: float, path: Path) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 44100)) / 44100
    voice = 0.3 * np.sin(2 * np.pi * (140 + 30 * np.sin(2 * np.pi * 0.5 * t)) * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    sf.write(path, (voice + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 44100)
    return path


def _export(preset: str, steps: list[int], out: Path) -> Path:
    if (out / "manifest.json").is_file():
        return out
    code = ("import sys, torch; from apucodec.contract.config import preset; from apucodec.codec.model import APUCodec;"
            "from apucodec.export import export_model; torch.manual_seed(0);"
            f"export_model(APUCodec(preset({preset!r})).eval(), sys.argv[1], step_frames={tuple(steps)!r}, log=None)")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: the bundled model)")
    parser.add_argument("--checkpoint-preset", help="export a random-weight model of this preset instead")
    parser.add_argument("--steps", default="1,2,4,16")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--input", type=Path)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "apucodec-stream-latency")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    model = args.model
    if args.checkpoint_preset:
        name = f"{args.checkpoint_preset}-s{'-'.join(map(str, steps))}"
        model = _export(args.checkpoint_preset, steps, args.work / name)
    clip = args.input or _clip(args.seconds, args.work / f"clip-{args.seconds:g}s.wav")
    print(f"model {model or 'bundled'}; clip {clip} ({sf.info(clip).duration:.1f} s); CPU EP for both graph stages")
    print(f"{'step':>5} {'step ms':>8} {'alg. ms':>8} {'compute p50/p95':>16} {'latency p50/p95/p99/max':>26} "
          f"{'misses':>7} {'RTF':>6}")
    for step in steps:
        cmd = [sys.executable, "-m", "apucodec", "stream", str(clip), str(args.work / f"out-{step}.wav"),
               "--step-frames", str(step), "--realtime", "--json", "--encoder-ep", "cpu", "--decoder-ep", "cpu"]
        if model:
            cmd += ["--model", str(model)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(f"{step:>5} failed: {done.stderr.strip()}")
            continue
        r = json.loads(done.stdout)
        c, lat = r["compute_ms"], r["latency_ms"]
        print(f"{step:>5} {r['step_ms']:>8.1f} {r['algorithmic_latency_ms']:>8.1f} {c['p50']:>7.1f}/{c['p95']:<8.1f} "
              f"{lat['p50']:>7.1f}/{lat['p95']:.1f}/{lat['p99']:.1f}/{lat['max']:<7.1f} {r['deadline_misses']:>7} "
              f"{r['rtf']:>6.3f}")


if __name__ == "__main__":
    main()
