"""NumPy RVQ (the runtime's CPU lane) vs the PyTorch quantizer on the same latents, and RVQ's share of the pipeline.

    python benchmarks/rvq.py --model apucodec-model --seconds 10

The latents are real: the model's encoder step graph streamed over a generated clip (exactly the rows `run` hands
the RVQ lane). Both quantizers get the same codebooks (codebooks.npy) and quantize + dequantize those latents one
step's frames at a time; each is timed as the median of --repeats passes over the clip, with
one thread each (the RVQ lane runs beside the encoder and decoder, so it gets no more). Code agreement is printed
as a check that both compute the same thing. Then the whole pipeline runs sequentially and pipelined, and RVQ's
busy time is given as a share of each run's wall time (the target: at most 3 %).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def per_step(rows: np.ndarray, chunk: int) -> list[np.ndarray]:
    return [rows[start: start + chunk] for start in range(0, rows.shape[0], chunk)]


def time_numpy(rvq, pieces: list[np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        codes = [rvq.quantize(piece) for piece in pieces]
        _ = [rvq.dequantize(c) for c in codes]
        passes.append(time.perf_counter() - start)
    return statistics.median(passes), np.concatenate(codes, axis=1)


def time_torch(codebooks: np.ndarray, pieces: list[np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    import torch

    from apucodec.codec.quantizer import ResidualVectorQuantizer
    from apucodec.contract.config import CodecConfig

    torch.set_num_threads(1)
    n, k, d = codebooks.shape
    rvq = ResidualVectorQuantizer(CodecConfig(latent_dim=d, codebook_size=k, n_codebooks=n)).eval()
    rvq.codebooks.copy_(torch.from_numpy(codebooks))
    latents = [torch.from_numpy(np.ascontiguousarray(piece.T))[None] for piece in pieces]  # [1, D, frames]
    passes = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            codes = [rvq.quantize_codes(z) for z in latents]
            _ = [rvq.dequantize(c) for c in codes]
            passes.append(time.perf_counter() - start)
    return statistics.median(passes), np.concatenate([c[0].numpy() for c in codes], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--step-frames", type=int, default=0, help="step graphs to run (0: the model's largest)")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads per session (0: runtime policy)")
    args = parser.parse_args()

    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings
    from apucodec.tools.bench import generated_audio
    settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=args.threads)
    codec = CodecEngine.open(args.model, settings, warn=None, step_frames=args.step_frames or None)
    step = codec.step_frames("encoder")
    audio = generated_audio(args.seconds, codec.sample_rate)
    encoder = codec.stepper("encoder")
    rows = np.concatenate([encoder.push(audio[None]), encoder.finish()], axis=1).T  # [frames, latent]
    pieces = per_step(rows, step)
    codebooks = codec.rvq.codebooks
    n, k, d = codebooks.shape
    print(f"latents: {rows.shape[0]} frames x {d} from {args.seconds:g} s ({len(pieces)} steps of "
          f"{step} frames); codebooks {n} x {k} x {d}; quantize + dequantize, 1 thread each, "
          f"median of {args.repeats}")
    numpy_s, numpy_codes = time_numpy(codec.rvq, pieces, args.repeats)
    torch_s, torch_codes = time_torch(codebooks, pieces, args.repeats)
    agree = (numpy_codes == torch_codes).mean() * 100
    print(f"{'quantizer':10s} {'ms / clip':>10s} {'ms / step':>12s} {'x real time':>12s}")
    for name, seconds in (("NumPy", numpy_s), ("PyTorch", torch_s)):
        print(f"{name:10s} {seconds * 1e3:10.2f} {seconds * 1e3 / len(pieces):12.2f} {args.seconds / seconds:12.0f}")
    print(f"NumPy / PyTorch time: {numpy_s / torch_s:.2f}x; codes equal: {agree:.3f} %")

    codec.run_array(audio[: step * codec.hop])  # warm-up: one step
    for overlap in (False, True):
        _, result = codec.run_array(audio, overlap=overlap)
        rvq_s = result.stage_seconds().get("rvq", 0.0)
        label = "pipelined" if overlap else "sequential"
        print(f"pipeline ({label}): wall {result.wall_seconds:.3f} s (RTF {result.rtf:.3f}); rvq busy {rvq_s:.3f} s "
              f"= {rvq_s / result.wall_seconds * 100:.2f} % of the wall time")


if __name__ == "__main__":
    main()
