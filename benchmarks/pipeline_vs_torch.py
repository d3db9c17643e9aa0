"""The PyTorch eager codec vs the ONNX Runtime pipeline on the same clip, same weights, same CPU: RTFs and ratios.

    python benchmarks/pipeline_vs_torch.py --checkpoint ckpt.pt --model apucodec-model --seconds 10

PyTorch: `model.encode` then `model.decode` on the whole clip at once (eval, no_grad, torch.set_num_threads(N)
with N = the CPU's cores unless --threads), after a 1 s warm-up. ONNX Runtime: `Codec.run_array` (windows,
pipelined lanes, the runtime's own thread policy unless --threads), both graph stages on the CPU EP, with the FP32
encoder and, if the model directory has one, the INT8 encoder — which is made for the NPU; on a CPU it shows what
the fallback costs. Each variant is timed once after a one-window warm-up. The outputs are compared too (SNR of
the pipeline's output against PyTorch's), so a fast but wrong graph cannot pass for a speed-up.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


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


def pipeline_seconds(model: str, audio: np.ndarray, encoder_graph: str, threads: int) -> tuple[float, np.ndarray, str]:
    """Wall seconds of the ORT pipeline (pipelined lanes, CPU EP), its output, and the placement summary."""
    from apucodec.runtime.pipeline import Codec
    from apucodec.runtime.providers import SessionSettings

    settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), encoder_graph=encoder_graph,
                               threads=threads)
    codec = Codec.open(model, settings, warn=None)
    codec.run_array(audio[: codec.geometry.chunk_samples])  # warm-up: one window through every stage
    out, result = codec.run_array(audio)
    return result.wall_seconds, out, f"{result.placement.summary()}, {result.windows} windows"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="the checkpoint the model directory was exported from")
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads and ORT intra-op threads per session (0: all cores for torch, the "
                             "runtime's own policy for ORT)")
    args = parser.parse_args()

    from apucodec.model_dir import load_model_dir
    from apucodec.runtime.bench import generated_audio

    model = load_model_dir(args.model)
    audio = generated_audio(args.seconds, model.config.sample_rate)
    cores = os.cpu_count() or 1
    torch_threads = args.threads or cores
    print(f"clip: {args.seconds:g} s generated audio; model {model.label}; {cores} CPU cores; torch threads "
          f"{torch_threads}; ORT intra-op threads per session {args.threads or 'runtime policy'}")
    torch_s, torch_out = torch_codec_seconds(args.checkpoint, audio, torch_threads)
    rows = [("PyTorch eager (whole clip)", torch_s, None, "encode + decode, no_grad")]
    graphs = ["fp32"] + (["int8"] if model.has("encoder_int8") else [])
    for graph in graphs:
        seconds, out, where = pipeline_seconds(args.model, audio, graph, args.threads)
        rows.append((f"ORT pipeline, {graph.upper()} encoder", seconds, snr_db(torch_out, out), where))
    print(f"{'variant':32s} {'wall s':>8s} {'RTF':>7s} {'vs torch':>9s} {'SNR vs torch dB':>16s}  notes")
    for name, seconds, snr, notes in rows:
        ratio = torch_s / seconds
        snr_text = "" if snr is None else f"{snr:.1f}"
        print(f"{name:32s} {seconds:8.2f} {seconds / args.seconds:7.3f} {ratio:8.2f}x {snr_text:>16s}  {notes}")
    if "int8" not in graphs:
        print(f"(no encoder.int8.onnx in {model.path}: run 'apucodec quantize-encoder' to add the INT8 row)")


if __name__ == "__main__":
    main()
