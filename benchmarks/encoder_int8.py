"""FP32 vs INT8 encoder step graph speed on ONNX Runtime's CPU EP, for a 1 s and a 10 s input (or any durations).

The encoder streams a file through its offline step graph (the one quantize-encoder quantizes), so an input of N
seconds costs ceil((frames + delay) / S) step runs; this times exactly those runs, made by the runtime's own
Stepper (state, bounds, final flush) over a generated signal, and reports the median (and min) over interleaved
repeats, the real-time factor and INT8's time relative to FP32.

On x86 ONNX Runtime fuses Q/DQ pairs into integer kernels only for uint8 activations (int8 ones only on ARM),
and the NPU presets quantize activations to int8, so the CPU EP runs the graph as float Conv plus
Quantize/Dequantize work, VNNI or not, and INT8 is slower than FP32 here: the INT8 graph is made for the NPU, and this
benchmark says what it costs when it falls back to the CPU.

    python benchmarks/encoder_int8.py --model ./apucodec-model --seconds 1 10 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from apucodec.calibration.custom_ops import register_custom_ops
from apucodec.calibration.streams import graph_stepper, stream
from apucodec.contract.steps import step_role
from apucodec.dsp.signals import mixture
from apucodec.model.directory import ModelDir, load_model_dir
from apucodec.model.location import locate_model
from apucodec.runtime.onnx_step import onnx_step

LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return " ".join(f for f in wanted if f" {f}" in flags) or "none of avx2/avx512/vnni"


def open_session(path: Path, domains: list[str], threads: int, level: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    register_custom_ops(options, domains)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def offline_roles(model: ModelDir) -> tuple[str, str]:
    """(FP32 role, NPU INT8 role) of the encoder's offline step graph."""
    step = max(model.step_sizes("encoder"))
    return step_role("encoder", step), step_role("encoder", step, "npu-int8")


def time_pass(model: ModelDir, role: str, session: ort.InferenceSession, audio: np.ndarray) -> tuple[float, int]:
    """Seconds to stream `audio` through the step graph from zero state, and the step runs that took."""
    stepper = graph_stepper(model, role, onnx_step(session))
    started = time.perf_counter()
    stream(stepper, audio[None])
    return time.perf_counter() - started, stepper.steps


def time_graphs(model: ModelDir, role: str, sessions: dict[str, ort.InferenceSession], audio: np.ndarray,
                repeats: int) -> tuple[dict[str, list[float]], int]:
    """Interleaved repeats (fp32, int8, fp32, ...) so that load from other processes hits both graphs alike.

    `role` (the FP32 graph) gives the step facts both graphs share; returns the times and the steps per pass."""
    for session in sessions.values():
        time_pass(model, role, session, audio[: model.hop])   # warm-up: allocations, kernel selection
    runs: dict[str, list[float]] = {label: [] for label in sessions}
    steps = 0
    for _ in range(repeats):
        for label, session in sessions.items():
            seconds, steps = time_pass(model, role, session, audio)
            runs[label].append(seconds)
    return runs, steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory with an encoder.s{S}.npu-int8.onnx")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--opt-level", choices=sorted(LEVELS), default="all",
                        help="graph optimisation level (the runtime uses 'all')")
    args = parser.parse_args(argv)

    model = load_model_dir(locate_model(args.model).path)
    fp32_role, int8_role = offline_roles(model)
    if not model.has(int8_role):
        print(f"{model.path}: no {int8_role}.onnx; run 'apucodec quantize-encoder' first", file=sys.stderr)
        return 1
    rate = model.config.sample_rate
    entry = model.files[int8_role]
    step_seconds = entry.step_frames * model.hop / rate
    print(f"model {model.label}; step graphs {fp32_role} / {int8_role} ({step_seconds:.2f} s per step); "
          f"INT8 preset {entry.preset or '?'}")
    print(f"onnxruntime {ort.__version__}, CPU EP, {args.threads} thread(s), opt level {args.opt_level}, "
          f"CPU flags: {cpu_flags()}")
    print(f"{'input':>7} {'steps':>7} {'graph':>6} {'median ms':>10} {'min ms':>8} {'RTF':>7} {'INT8/FP32':>9}")
    graphs = [("fp32", model.path_of(fp32_role), []),
              ("int8", model.path_of(int8_role), entry.custom_op_domains or [])]
    sessions = {label: open_session(path, domains, args.threads, args.opt_level) for label, path, domains in graphs}
    for seconds in args.seconds:
        audio = mixture(int(seconds * rate), rate).astype(np.float32)
        runs, steps = time_graphs(model, fp32_role, sessions, audio, args.repeats)
        medians = {label: statistics.median(times) for label, times in runs.items()}
        for label, times in runs.items():
            ratio = f"{medians['int8'] / medians['fp32']:.2f}x" if label == "int8" else ""
            print(f"{seconds:6.1f}s {steps:7d} {label:>6} {medians[label] * 1e3:10.1f} {min(times) * 1e3:8.1f} "
                  f"{medians[label] / seconds:7.4f} {ratio:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
