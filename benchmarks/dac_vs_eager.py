"""DAC side by side: its own PyTorch eager (descript-audio-codec, in the reference venv) vs apucodec FP32 vs CPU INT8
on one clip, plus live latency at 4 and 8 frames per step.

    python benchmarks/dac_vs_eager.py --model DIR --ref-python /work/refvenv/bin/python --input clip.wav \
        [--kwargs '{}'] [--seed 0] [--seconds 10] [--threads 2]

DIR is an `apucodec export` of the checkpoint that tests/reference/dac_reference.py saves for the same --kwargs and
--seed (same weights), with step graphs at 4, 8 and a large offline step, and `quantize --target cpu` run on it
(for the INT8 row). Rows: wall seconds and real-time factor of encode + decode of the clip, and each row's speed
relative to DAC eager. Eager is timed in its own process after a warm-up; apucodec runs the pipelined engine on the
CPU EP (both graph stages, --threads intra-op threads each). Live rows: per-step compute (encoder step + RVQ +
decoder step, in turn, at the step size) p50/p95 over the clip, the algorithmic latency from the manifest, and
latency = algorithmic + p95 compute; "misses" counts steps whose compute exceeded one step period.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.stage_plan import SessionSettings

REF_SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "reference" / "dac_reference.py"


def eager_seconds(ref_python: str, kwargs: str, seed: int, audio: np.ndarray, threads: int) -> float:
    with tempfile.TemporaryDirectory() as work:
        np.save(Path(work) / "x.npy", audio)
        subprocess.run([ref_python, str(REF_SCRIPT), "--kwargs", kwargs, "--seed", str(seed), "--time", "--threads",
                        str(threads), "--out", str(Path(work) / "ref.npz"), str(Path(work) / "x.npy")], check=True,
                       capture_output=True)
        return float(np.load(Path(work) / "ref.npz")["seconds_0"].sum())


def settings(graph: str, threads: int, step_frames: int | None = None) -> SessionSettings:
    return SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), encoder_graph=graph, decoder_graph=graph,
                           threads=threads, step_frames=step_frames, int8_floor_dbfs=float("-inf"))


def pipeline_seconds(model: Path, graph: str, audio: np.ndarray, threads: int) -> float:
    codec = CodecEngine.open(model, settings(graph, threads), warn=None)
    codec.run_array(audio[: codec.sample_rate])  # warm-up
    start = time.perf_counter()
    codec.run_array(audio)
    return time.perf_counter() - start


def live_row(model: Path, graph: str, step: int, audio: np.ndarray, threads: int) -> dict[str, float]:
    codec = CodecEngine.open(model, settings(graph, threads, step), warn=None)
    hop = codec.hop
    encoder, decoder = codec.stepper("encoder"), codec.stepper("decoder")
    computes = []
    for i in range(0, audio.size - step * hop + 1, step * hop):
        start = time.perf_counter()
        latent = encoder.push(audio[None, i: i + step * hop])
        if latent.shape[1]:
            rows = codec.rvq.dequantize(codec.rvq.quantize(np.ascontiguousarray(latent.T)))
            decoder.push(np.ascontiguousarray(rows.T))
        computes.append(time.perf_counter() - start)
    compute = np.array(computes[4:])  # the first steps fill the lookahead and warm the sessions
    algorithmic = codec.model.manifest.streaming.algorithmic_latency[str(step)]["ms"]
    period = step * hop / codec.sample_rate
    return {"p50_ms": 1e3 * float(np.median(compute)), "p95_ms": 1e3 * float(np.percentile(compute, 95)),
            "algorithmic_ms": algorithmic, "latency_ms": algorithmic + 1e3 * float(np.percentile(compute, 95)),
            "misses": int(np.sum(compute > period)), "steps": int(compute.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--ref-python", required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--kwargs", default="{}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--live-steps", default="4,8", help="step sizes of the live rows (the model needs them)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    audio, rate = sf.read(args.input, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(audio.mean(axis=1)[: int(args.seconds * rate)])
    seconds = audio.size / rate
    rows = {"DAC eager (descript-audio-codec)": eager_seconds(args.ref_python, args.kwargs, args.seed, audio,
                                                                args.threads),
            "apucodec FP32": pipeline_seconds(args.model, "fp32", audio, args.threads),
            "apucodec CPU INT8": pipeline_seconds(args.model, "auto", audio, args.threads)}
    eager = rows["DAC eager (descript-audio-codec)"]
    print(f"{args.input.name}: {seconds:.1f} s at {rate} Hz, encode + decode, {args.threads} threads")
    for name, wall in rows.items():
        print(f"  {name:34s} {wall:7.2f} s  RTF {wall / seconds:.3f}  {eager / wall:5.2f}x DAC eager")
    live = {}
    for graph in ("fp32", "auto"):
        for step in (int(s) for s in args.live_steps.split(",")):
            row = live_row(args.model, graph, step, audio, args.threads)
            live[f"{graph} s{step}"] = row
            print(f"  live {'FP32' if graph == 'fp32' else 'CPU INT8':8s} {step} frames: compute p50 "
                  f"{row['p50_ms']:.1f} ms p95 {row['p95_ms']:.1f} ms, algorithmic {row['algorithmic_ms']:.1f} ms, "
                  f"latency {row['latency_ms']:.1f} ms, misses {row['misses']}/{row['steps']}")
    if args.json:
        print(json.dumps({"seconds": seconds, "wall": rows, "live": live}))


if __name__ == "__main__":
    main()
