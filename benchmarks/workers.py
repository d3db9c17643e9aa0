"""What a stage worker costs: per-step overhead of the shared-memory + pipe round trip, and whole runs with and
without the encoder in a worker, measured side by side in one process.

    python benchmarks/workers.py --seconds 60 [--model DIR] [--python /path/to/other/python] [--steps 200]

1. Per step, same graph, same thread settings: an in-process session's `run_feeds` vs a worker's (median of
   --steps). Two step sizes: a 4-frame step (2048 samples in, 128x4 latent out, a one-Conv graph made here, so
   the time is nearly all transport) and the model's offline window step (its encoder graph).
2. A --seconds clip encoded (encoder + RVQ) and run (encode + decode) with the encoder in this process and in a
   worker: wall seconds and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def four_frame_graph(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((128, 1, 512)).astype(np.float32) * 0.01
    graph = helper.make_graph(
        [helper.make_node("Conv", ["audio", "w"], ["latent"], strides=[512], kernel_shape=[512], pads=[0, 0],
                          dilations=[1], group=1)], "step",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, 2048])],
        [helper.make_tensor_value_info("latent", TensorProto.FLOAT, [1, 128, 4])], [numpy_helper.from_array(weight,
                                                                                                            "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # loadable by the older onnxruntime a worker may run
    onnx.save(model, path)


def per_step(session, feeds, steps: int) -> float:
    for _ in range(3):
        session.run_feeds(feeds)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        session.run_feeds(feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def open_encoder(model, python: str | None):
    from apucodec.runtime.sessions import open_stage_session
    from apucodec.runtime.stage_plan import SessionSettings

    settings = SessionSettings(encoder_eps=("cpu",), threads=1, workers={"encoder": python} if python else {})
    return open_stage_session(model, "encoder", settings, None, warn=None)


def model_with_encoder(base: Path, graph: Path, folder: Path):
    import shutil

    from apucodec.model_dir import file_entry, load_model_dir

    shutil.copytree(base, folder)
    shutil.copy(graph, folder / "encoder.onnx")
    model = load_model_dir(folder, verify=False)
    model.manifest["files"]["encoder"] = file_entry(folder / "encoder.onnx", "encoder")
    model.manifest["files"].pop("encoder_int8", None)
    model.save_manifest()
    return load_model_dir(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--python", default="self", help="the worker's interpreter (default: this one)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    from apucodec.model_dir import default_model_path, load_model_dir
    from apucodec.runtime import Codec, SessionSettings

    model = load_model_dir(default_model_path(args.model))
    python = sys.executable if args.python == "self" else args.python
    print(f"model {model.path}; worker python {python}")
    with tempfile.TemporaryDirectory() as tmp:
        four_frame_graph(Path(tmp) / "step4.onnx")
        small = model_with_encoder(model.path, Path(tmp) / "step4.onnx", Path(tmp) / "m")
        rows = []
        for label, mdl, shape in (("4-frame step (2048 samples)", small, (1, 1, 2048)),
                                  (f"offline window ({model.geometry.window_samples} samples)", model,
                                   (1, 1, model.geometry.window_samples))):
            feeds = {"audio": (np.random.default_rng(1).standard_normal(shape) * 0.1).astype(np.float32)}
            local, worker = open_encoder(mdl, None), open_encoder(mdl, python)
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
            codec = Codec(model, SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=1,
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
