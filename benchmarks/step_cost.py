"""GFLOP per N seconds of audio: the step graphs vs the whole-file network (and, optionally, the old static windows).

    python benchmarks/step_cost.py --checkpoint ckpt.pt --model <step-graph export> --seconds 10 \
        [--windowed-model <version-1 export>]

Every figure is counted from ONNX graphs with apucodec/export/cost.py (Conv/ConvTranspose/MatMul multiply-adds,
2 FLOPs each), none from a formula:

* whole-file: the checkpoint's plain (weight-norm folded) encoder and decoder exported here with torch.onnx at the
  clip's length (its frames, the last one zero-padded), i.e. what one whole-file pass over the clip costs; also
  scaled to exactly N seconds (the convolutions' work is linear in the length);
* per step size S of the model directory: the manifest's count of one step (the step graphs as exported),
  - steady state: per-step GFLOP / S * frames in N seconds,
  - the actual clip: per-step GFLOP * the steps the runtime makes for it — the last, zero-padded step and the flush
    steps that push the stage's delay out included (counted with the runtime's own Stepper on a stand-in graph);
* with --windowed-model (a format-1 export of the same checkpoint, made by the retired windowed runtime): its
  window graphs' count * the windows its runtime cut the clip into (ceil(frames / chunk frames)).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def whole_file_gflop(checkpoint: str, frames: int) -> dict[str, float]:
    """GFLOP of the plain encoder on frames * hop samples and of the plain decoder on `frames` latent frames."""
    import torch

    from apucodec.codec.checkpoint import load_checkpoint
    from apucodec.export.cost import graph_gflop
    from apucodec.export.folding import fold_weight_norm
    from apucodec.export.graph import to_onnx
    from apucodec.export.specs import GraphSpec, TensorSpec

    model = load_checkpoint(checkpoint).model.eval()
    cfg = model.config
    shapes = {"encoder": ([1, 1, frames * cfg.hop_length], [1, cfg.latent_dim, frames]),
              "decoder": ([1, cfg.latent_dim, frames], [1, 1, frames * cfg.hop_length])}
    counts = {}
    torch.set_num_threads(1)
    for stage, (x, y) in shapes.items():
        plain, _ = fold_weight_norm(getattr(model, stage), cfg)
        spec = GraphSpec(role=f"{stage}.whole", filename=f"{stage}.whole.onnx", stage=stage, step_frames=frames,
                         inputs=(TensorSpec("x", tuple(x)),), outputs=(TensorSpec("y", tuple(y)),))
        proto, _ = to_onnx(plain, spec, 17)
        gflop = graph_gflop(proto)
        if gflop is None:
            raise SystemExit(f"{stage}: the whole-file graph has a dynamic shape; cannot count it")
        counts[stage] = gflop
    return counts


def runtime_steps(model, stage: str, step: int, samples: int) -> int:
    """Step-graph calls the runtime makes for a clip of `samples`: the runtime's Stepper, set up as CodecEngine.stepper
    sets it up, over a stand-in step function (zeros), so no session is needed."""
    from apucodec.contract.steps import frames_for_length
    from apucodec.runtime.onnx_step import stage_stepper

    hop, latent = model.hop, model.config.latent_dim
    frames = frames_for_length(samples, hop)
    source = np.zeros((1, samples), np.float32) if stage == "encoder" else np.zeros((latent, frames), np.float32)

    def stand_in(x: np.ndarray, state: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((1, stepper.out_channels, step * stepper.out_rate), np.float32), state

    stepper = stage_stepper(model, model.step_graph(stage, step), stand_in)
    stepper.push(source)
    stepper.finish(frames)
    return stepper.steps


def windowed_lines(path: Path, frames: int, whole: float) -> list[str]:
    manifest = json.loads((path / "manifest.json").read_text())
    geometry, files = manifest.get("window") or {}, manifest.get("files") or {}
    try:
        per_window = sum(files[role]["graph"]["gflop"] for role in ("encoder", "decoder"))
        chunk, window = int(geometry["chunk_frames"]), int(geometry["window_frames"])
    except (KeyError, TypeError):
        return [f"{path}: not a format-1 (windowed) export with FLOP counts"]
    windows = math.ceil(frames / chunk)
    total = windows * per_window
    return [f"windowed (retired runtime, {path.name}): {windows} windows of {window} frames ({chunk} new) x "
            f"{per_window:.2f} GFLOP = {total:.1f} GFLOP, {total / whole:.3f}x the whole-file pass"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="the checkpoint the model directory was exported from")
    parser.add_argument("--model", required=True, help="a step-graph (format 2) export of it")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--windowed-model", type=Path, default=None, help="a format-1 export, for the old figure")
    args = parser.parse_args()

    from apucodec.model.directory import load_model_dir

    model = load_model_dir(args.model)
    rate, hop = model.config.sample_rate, model.hop
    samples = int(round(args.seconds * rate))
    exact_frames = samples / hop
    frames = math.ceil(exact_frames)
    whole = whole_file_gflop(args.checkpoint, frames)
    whole_clip = sum(whole.values())
    whole_exact = whole_clip / frames * exact_frames
    print(f"clip: {args.seconds:g} s = {samples} samples = {exact_frames:.2f} frames of {hop} ({frames} with the "
          f"last one padded); model {model.label}")
    print(f"whole-file network (torch.onnx export of the plain encoder/decoder at {frames} frames, counted by "
          f"export/cost.py): encoder {whole['encoder']:.1f} + decoder {whole['decoder']:.1f} = {whole_clip:.1f} GFLOP; "
          f"scaled to exactly {args.seconds:g} s: {whole_exact:.1f} GFLOP")
    print(f"{'step':>5s} {'GFLOP/step':>11s} {'steady GFLOP':>13s} {'vs whole':>9s} {'steps enc+dec':>14s} "
          f"{'clip GFLOP':>11s} {'vs whole':>9s}")
    for step in model.step_sizes("encoder"):
        gflop = {s: model.step_graph(s, step).graph.gflop for s in ("encoder", "decoder")}
        steady = sum(gflop.values()) / step * exact_frames
        steps = {s: runtime_steps(model, s, step, samples) for s in ("encoder", "decoder")}
        clip = sum(gflop[s] * steps[s] for s in steps)
        print(f"{step:5d} {sum(gflop.values()):11.3f} {steady:13.1f} {steady / whole_exact:8.4f}x "
              f"{steps['encoder']:6d}+{steps['decoder']:<7d} {clip:11.1f} {clip / whole_clip:8.4f}x")
    print("steady = per-step GFLOP / step frames * frames in the clip's exact length, vs the whole-file network "
          "scaled to that length; clip = every step the runtime makes (padded last step and flush steps included), "
          f"vs one whole-file pass over the {frames} frames")
    if args.windowed_model is not None:
        print("\n".join(windowed_lines(args.windowed_model, frames, whole_clip)))


if __name__ == "__main__":
    main()
