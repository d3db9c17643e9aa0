"""Two CPU INT8 encoder step graphs and the FP32 one, timed interleaved on the same audio: did a re-quantization cost
speed?

    python benchmarks/int8_encoder_ab.py --before OLD_DIR [--model DIR] [--audio FILE] [--seconds 10] [--rounds 7]

Each graph (OLD_DIR's and DIR's `encoder.s{S}.cpu-int8`, DIR's `encoder.s{S}` FP32, S the largest step) streams the
same --seconds of --audio (default: generated music-like audio) through the runtime's Stepper, one after the other
in every round; prints the median and min wall time per graph and the INT8/FP32 ratios side by side.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from apucodec.calibration.streams import graph_stepper, stream
from apucodec.contract.steps import frames_for_length, step_role
from apucodec.io.audio_read import read_audio
from apucodec.model.directory import BUNDLED_DIR, load_model_dir
from apucodec.runtime.onnx_step import onnx_step


def _signal(seconds: float, rate: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((220.0, 330.0, 495.0, 660.0)))
    return (0.1 * tone * (1 + np.sin(2 * np.pi * 1.5 * t)) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="model directory with the earlier INT8 graphs")
    parser.add_argument("--model", type=Path, default=BUNDLED_DIR)
    parser.add_argument("--audio", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = load_model_dir(args.model)
    step = max(model.step_sizes("encoder"))
    role = step_role("encoder", step)
    rate = model.config.sample_rate
    x = read_audio(args.audio, rate)[0][: int(args.seconds * rate)] if args.audio else _signal(args.seconds, rate)
    paths = {"INT8 before": load_model_dir(args.before).path_of(step_role("encoder", step, "cpu-int8")),
             "INT8 after": model.path_of(step_role("encoder", step, "cpu-int8")), "FP32": model.path_of(role)}
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    steps = {name: onnx_step(ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]))
             for name, p in paths.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    frames = frames_for_length(x.size, model.hop)
    for _ in range(args.rounds):
        for name, fn in steps.items():
            started = time.perf_counter()
            stream(graph_stepper(model, role, fn), x[None], frames)
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{role}, {x.size / rate:.1f} s of audio, {args.threads} threads, median of {args.rounds} interleaved rounds")
    print(f"{'graph':12s} {'median s':>9s} {'min s':>7s} {'FP32 / this':>12s}")
    for name, t in times.items():
        print(f"{name:12s} {median[name]:9.3f} {min(t):7.3f} {median['FP32'] / median[name]:11.2f}x")
    print(f"after / before: {median['INT8 after'] / median['INT8 before']:.2f}x the time")


if __name__ == "__main__":
    main()
