"""The PyTorch eager codec vs the ONNX Runtime pipeline on the same clip, same weights, same CPU: RTFs and ratios.

    python benchmarks/pipeline_vs_torch.py --checkpoint ckpt.pt --model apucodec-model --seconds 10

PyTorch: `model.encode` then `model.decode` on the whole clip at once (eval, no_grad, torch.set_num_threads(N)
with N = the CPU's cores unless --threads), after a 1 s warm-up. ONNX Runtime: `CodecEngine.run_array` (step graphs of
--step-frames frames, default the model's largest; pipelined lanes, the runtime's own thread policy unless
--threads), both graph stages on the CPU EP: FP32 graphs forced (--precision fp32); if the model directory has
the NPU INT8 encoder at that step, that encoder with the FP32 decoder (made for the NPU: on a CPU it shows what
the fallback costs); and if it has CPU INT8 graphs (`apucodec quantize --target cpu`), the runtime's own choice
(default precision), which picks them on the CPU EP — the row's placement says which graphs ran, and how many
steps the INT8 floor sent to FP32 (a random-weight model's output is quiet, so its decoder steps all fall under
the floor) — and the same with the floor off (--int8-floor -inf), every step in INT8. The variants run in
--rounds interleaved rounds (default 3), each after a one-step warm-up, and the median wall time is shown. The
outputs are compared too (SNR of the pipeline's output against PyTorch's),
so a fast but wrong graph cannot pass for a speed-up.

Then the roofline, measured in the same run: the FP32 GEMM speed of this CPU (ONNX Runtime's MatMul, the MLAS
kernels its Conv runs on, with the runtime's threads; NumPy's BLAS beside it), the convolutions' FLOPs per audio
second (the manifest's per-step count over the step's frames), and from them two compute floors — the wall time of
the clip's convolutions at GEMM speed and nothing else, once for the whole clip and once for the step-graph calls
the runtime actually made (the padded last step and the flush steps included) — and the largest ratio over
PyTorch eager each allows on this machine.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from apucodec.model.directory import ModelDir


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / noise)) if noise > 0 else float("inf")


def torch_codec_seconds(checkpoint: str, audio: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
    """Wall seconds of PyTorch eager encode + decode on the whole clip, and its output trimmed to the input."""
    import torch

    from apucodec.codec.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    model = load_checkpoint(checkpoint).model.eval()
    hop = model.config.hop_length
    padded = np.zeros(-(-audio.size // hop) * hop, dtype=np.float32)
    padded[: audio.size] = audio
    x = torch.from_numpy(padded)[None, None]
    with torch.no_grad():
        model.decode(model.encode(x[..., : model.config.sample_rate]))  # warm-up: allocator, kernel choice
        start = time.perf_counter()
        out = model.decode(model.encode(x))
        seconds = time.perf_counter() - start
    return seconds, out[0, 0, : audio.size].numpy()


def pipeline_seconds(model: str, audio: np.ndarray, encoder_graph: str, threads: int, step_frames: int,
                     decoder_graph: str = "fp32",
                     int8_floor: float | None = None) -> tuple[float, np.ndarray, str, dict[str, int]]:
    """Wall seconds of the ORT pipeline (pipelined lanes, CPU EP), its output, the placement summary (graphs
    included), and the step-graph calls each graph stage made."""
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings

    settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), encoder_graph=encoder_graph,
                               decoder_graph=decoder_graph, threads=threads)
    if int8_floor is not None:
        settings.int8_floor_dbfs = int8_floor
    codec = CodecEngine.open(model, settings, warn=None, step_frames=step_frames)
    codec.run_array(audio[: max(step_frames, 4) * codec.hop])  # warm-up: one step through every stage
    out, result = codec.run_array(audio)
    steps = {stage: result.steps_of(stage) for stage in ("encoder", "decoder")}
    graphs = "/".join(codec.placement.stage(stage).graph.removesuffix(".onnx") for stage in ("encoder", "decoder"))
    floor = "".join(f"; {note}" for note in result.notes if "FP32 graph" in note)
    return (result.wall_seconds, out, f"{result.placement.summary()}, {graphs}, {steps['encoder']} + "
            f"{steps['decoder']} steps of {step_frames} frames{floor}", steps)


def gemm_gflops(threads: int, size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best-of-`repeats` FP32 GEMM speed (size^3): ONNX Runtime's MatMul and NumPy's matmul, in GFLOP/s."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                   .SerializeToString(), options, providers=["CPUExecutionProvider"])

    def best(run: Callable[[], object]) -> float:
        run()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return 2 * size**3 / min(times) / 1e9

    return best(lambda: session.run(None, {"a": a, "b": b})), best(lambda: a @ b)


def roofline_lines(model: ModelDir, audio_seconds: float, step_frames: int, steps: dict[str, int], threads: int,
                   rows: list[tuple]) -> list[str]:
    """The clip's convolution work against this CPU's GEMM speed, and what that allows against PyTorch."""
    from apucodec.contract.steps import step_role

    gflop = {stage: getattr(model.files[step_role(stage, step_frames)].graph, "gflop", None)
             for stage in ("encoder", "decoder")}
    if not all(isinstance(v, (int, float)) for v in gflop.values()):
        return [f"roofline: {model.path}/manifest.json has no FLOP count for a {step_frames}-frame step graph; "
                "re-export to get the roofline"]
    # steady state: a step's work spread over the frames it advances
    per_second = {stage: g / step_frames * model.config.frame_rate for stage, g in gflop.items()}
    clip_gflop = sum(per_second.values()) * audio_seconds
    stepped_gflop = sum(steps[stage] * g for stage, g in gflop.items())
    ort_gemm, numpy_gemm = gemm_gflops(threads)
    gemm = max(ort_gemm, numpy_gemm)
    torch_s = rows[0][1]
    calls = f"{steps['encoder']} + {steps['decoder']} steps"
    floors = {"whole clip, steady state": clip_gflop / gemm, f"the runtime's {calls}": stepped_gflop / gemm}
    lines = [f"roofline: FP32 GEMM {ort_gemm:.0f} GFLOP/s (ONNX Runtime MatMul 2048^3, threads "
             f"{threads or 'default'}), {numpy_gemm:.0f} GFLOP/s (NumPy); the floor uses the faster",
             f"  convolutions: {sum(per_second.values()):.1f} GFLOP per audio second (encoder "
             f"{per_second['encoder']:.1f} + decoder {per_second['decoder']:.1f}); this clip {clip_gflop:.0f} GFLOP, "
             f"{stepped_gflop:.0f} GFLOP in {calls} of {step_frames} frames (encoder {gflop['encoder']:.2f} + "
             f"decoder {gflop['decoder']:.2f} per step; the padded last step and the flush steps included)",
             "  useful GFLOP/s (the clip's work / wall): "
             + ", ".join(f"{name} {clip_gflop / seconds:.0f}" for name, seconds, *_ in rows)]
    lines += [f"  compute floor at GEMM speed, {what}: {floor:.2f} s (RTF {floor / audio_seconds:.3f}): no FP32 "
              f"engine can be more than {torch_s / floor:.2f}x faster than PyTorch eager here"
              for what, floor in floors.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="the checkpoint the model directory was exported from")
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--step-frames", type=int, default=0,
                        help="step graphs to run (0: the model's largest; a GroupNorm model's whole-sequence graphs)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every variant, interleaved (median shown)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads and ORT intra-op threads per session (0: all cores for torch, the "
                             "runtime's own policy for ORT)")
    args = parser.parse_args()

    from apucodec.contract.steps import WHOLE_SEQUENCE, step_role
    from apucodec.model.directory import load_model_dir
    from apucodec.tools.bench import generated_audio

    model = load_model_dir(args.model)
    # a pooled-norm (seed) model runs offline through its whole-sequence graphs (WHOLE_SEQUENCE, step "0")
    whole = model.has(step_role("encoder", WHOLE_SEQUENCE))
    step = args.step_frames or (WHOLE_SEQUENCE if whole else max(model.step_sizes("encoder")))
    audio = generated_audio(args.seconds, model.config.sample_rate)
    cores = os.cpu_count() or 1
    torch_threads = args.threads or cores
    print(f"clip: {args.seconds:g} s generated audio; model {model.label}; {cores} CPU cores; torch threads "
          f"{torch_threads}; ORT intra-op threads per session {args.threads or 'runtime policy'}")
    int8 = step_role("encoder", step, "npu-int8")
    cpu_int8 = [step_role(stage, step, "cpu-int8") for stage in ("encoder", "decoder")]
    variants: list[tuple[str, dict[str, object]]] = [("FP32 (forced)", {"encoder_graph": "fp32"})]
    if model.has(int8):
        variants.append(("NPU INT8 encoder", {"encoder_graph": "int8"}))
    if any(model.has(role) for role in cpu_int8):
        variants.append(("runtime's choice", {"encoder_graph": "auto", "decoder_graph": "auto"}))
        variants.append(("CPU INT8, no floor", {"encoder_graph": "auto", "decoder_graph": "auto",
                                                "int8_floor": float("-inf")}))
    # rounds interleave every variant, so load that comes and goes hits them alike; the median is reported
    times: dict[str, list[float]] = {"torch": [], **{name: [] for name, _ in variants}}
    results: dict[str, tuple[np.ndarray, str, dict[str, int]]] = {}
    for _ in range(args.rounds):
        torch_s, torch_out = torch_codec_seconds(args.checkpoint, audio, torch_threads)
        times["torch"].append(torch_s)
        for name, options in variants:
            seconds, out, where, graph_steps = pipeline_seconds(args.model, audio, threads=args.threads,
                                                                step_frames=step, **options)
            times[name].append(seconds)
            results[name] = (out, where, graph_steps)
    torch_s = float(np.median(times["torch"]))
    rows = [("PyTorch eager (whole clip)", torch_s, None, "encode + decode, no_grad")]
    for name, _ in variants:
        out, where, _ = results[name]
        rows.append((f"ORT pipeline, {name}", float(np.median(times[name])), snr_db(torch_out, out), where))
    steps = results["FP32 (forced)"][2]             # the roofline counts the FP32 row's step calls
    graphs = ["fp32"] + (["int8"] if model.has(int8) else [])
    print(f"median of {args.rounds} interleaved rounds; per-round wall s: "
          + "; ".join(f"{name} {' '.join(f'{t:.2f}' for t in ts)}" for name, ts in times.items()))
    print(f"{'variant':32s} {'wall s':>8s} {'RTF':>7s} {'vs torch':>9s} {'SNR vs torch dB':>16s}  notes")
    for name, seconds, snr, notes in rows:
        ratio = torch_s / seconds
        snr_text = "" if snr is None else f"{snr:.1f}"
        print(f"{name:32s} {seconds:8.2f} {seconds / args.seconds:7.3f} {ratio:8.2f}x {snr_text:>16s}  {notes}")
    if "int8" not in graphs:
        print(f"(no {int8}.onnx in {model.path}: run 'apucodec quantize-encoder' to add the INT8 row)")
    if not any(model.has(role) for role in cpu_int8):
        print(f"(no CPU INT8 graphs in {model.path}: run 'apucodec quantize --target cpu' to add the runtime's "
              "CPU INT8 row)")
    print("\n".join(roofline_lines(model, args.seconds, step, steps, args.threads, rows)))


if __name__ == "__main__":
    main()
