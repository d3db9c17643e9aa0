"""What a stage worker costs: per-step overhead of the shared-memory + pipe round trip, and whole runs with and
without the encoder in a worker, measured side by side in one process.

    python benchmarks/workers.py --seconds 60 [--model DIR] [--python /path/to/other/python] [--steps 200]

1. Per step, same graph, same thread settings: an in-process session's `run_feeds` vs a worker's (median of
   --steps), for each of the model's encoder step graphs (the live 4-frame step: the time is mostly transport and
   ORT overhead; the offline step).
2. A --seconds clip encoded (encoder + RVQ) and run (encode + decode) with the encoder in this process and in a
   worker: wall seconds and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def per_step(session, feeds, steps: int) -> float:
    for _ in range(3):
        session.run_feeds(feeds)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        session.run_feeds(feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def open_encoder(model, python: str | None, step_frames: int):
    from apucodec.runtime.sessions import open_stage_session
    from apucodec.runtime.stage_plan import SessionSettings

    settings = SessionSettings(encoder_eps=("cpu",), threads=1, workers={"encoder": python} if python else {},
                               step_frames=step_frames)
    return open_stage_session(model, "encoder", settings, None, warn=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--python", default="self", help="the worker's interpreter (default: this one)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    from apucodec.model.directory import load_model_dir
    from apucodec.model.location import locate_model
    from apucodec.runtime import CodecEngine, SessionSettings

    model = load_model_dir(locate_model(args.model).path)
    python = sys.executable if args.python == "self" else args.python
    print(f"model {model.path}; worker python {python}")
    rows = []
    for step in model.step_sizes("encoder"):
        label = f"{step}-frame step ({step * model.hop} samples)"
        rng = np.random.default_rng(1)
        feeds = {t.name: (rng.standard_normal(t.shape) * 0.1).astype(np.float32)
                 for t in model.files[f"encoder.s{step}"].inputs}
        feeds["bounds"] = np.array([5.0, 5.0], dtype=np.float32)
        local, worker = open_encoder(model, None, step), open_encoder(model, python, step)
        try:
            a, b = per_step(local, feeds, args.steps), per_step(worker, feeds, args.steps)
            same = all(np.array_equal(x, y) for x, y in zip(local.run_feeds(feeds).values(),
                                                            worker.run_feeds(feeds).values(), strict=True))
        finally:
            worker.close()
        rows.append((label, a, b, same))
    print(f"{'step':38s} {'in-process':>12s} {'worker':>12s} {'overhead':>12s} {'ratio':>7s}  same output")
    for label, a, b, same in rows:
        print(f"{label:38s} {a * 1e3:9.3f} ms {b * 1e3:9.3f} ms {(b - a) * 1e3:9.3f} ms {b / a:6.2f}x  {same}")
    x = (0.3 * np.sin(np.arange(int(args.seconds * model.config.sample_rate)) / 7.0)).astype(np.float32)
    print(f"\n{args.seconds:g} s clip, encoder on the CPU (1 thread), decoder on the CPU (1 thread):")
    for kind in ("encode", "run"):
        walls = {}
        for where, workers in (("in-process", {}), ("worker", {"encoder": python})):
            codec = CodecEngine(model, SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1,
                                                 workers=workers), warn=None,
                          stages=("encoder",) if kind == "encode" else ("encoder", "decoder"))
            try:
                result = codec.encode_array(x)[1] if kind == "encode" else codec.run_array(x)[1]
            finally:
                codec.sessions["encoder"].close() if workers else None
            walls[where] = result.wall_seconds
        print(f"  {kind:6s} in-process {walls['in-process']:7.2f} s, encoder in a worker {walls['worker']:7.2f} s "
              f"(ratio {walls['worker'] / walls['in-process']:.3f})")


if __name__ == "__main__":
    main()
