"""CPU INT8 vs FP32 encoder codes, per codebook, on held-out audio, with the end quality of both paths.

    python benchmarks/int8_agreement.py [--model DIR] [--dev /work/shared/audio/dev] [--int8-floor -45]

For every clip of --dev (read as the codec hears it: mono, 44.1 kHz): codes from `apucodec.load(precision="fp32")`
and from `precision="int8"` on the CPU EP (the model's CPU INT8 graphs), the share of equal codes per codebook
(pooled over all frames), and each path's decoded output scored against the input (SI-SDR, multi-scale mel
distance; means over clips). Also the share of INT8 codes a 16-bit rounding of the input changes, against FP32's.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

import apucodec
from apucodec.dsp.metrics import mel_distance, si_sdr
from apucodec.io.audio_read import read_audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--dev", default="/work/shared/audio/dev")
    parser.add_argument("--int8-floor", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    eps = {"encoder": "cpu", "decoder": "cpu"}
    fp32 = apucodec.load(args.model, precision="fp32", eps=eps, threads=args.threads)
    int8 = apucodec.load(args.model, precision="int8", eps=eps, threads=args.threads, int8_floor=args.int8_floor)
    equal = np.zeros(fp32.max_codebooks)
    flips = {"fp32": 0, "int8": 0}
    total = 0
    scores: dict[str, list[tuple[float, float]]] = {"fp32": [], "int8": []}
    files = sorted(glob.glob(str(Path(args.dev) / "*.wav")))
    for path in files:
        x, _ = read_audio(path, fp32.sample_rate)
        a, b = fp32.encode(x), int8.encode(x)
        equal += (a.array == b.array).sum(axis=1)
        total += a.frames
        x16 = (np.round(x * 32767) / 32767).astype(np.float32)
        flips["fp32"] += int((fp32.encode(x16).array != a.array).sum())
        flips["int8"] += int((int8.encode(x16).array != b.array).sum())
        for name, codec, codes in (("fp32", fp32, a), ("int8", int8, b)):
            y = codec.decode(codes)
            scores[name].append((si_sdr(x, y), mel_distance(x, y, fp32.sample_rate)))
    print(f"model {fp32.model.label}; encoder graphs: fp32 {fp32.graph_sha256()[:12]}, "
          f"int8 {int8.graph_precision()} {int8.graph_sha256()[:12]}; {len(files)} clips, {total} frames")
    print("codebook   " + " ".join(f"{i + 1:>6d}" for i in range(equal.size)))
    print("agree %    " + " ".join(f"{100 * e / total:6.1f}" for e in equal))
    for name in ("fp32", "int8"):
        s = np.array(scores[name])
        print(f"{name:5s} path: SI-SDR {s[:, 0].mean():6.2f} dB, mel distance {s[:, 1].mean():.4f}")
    cells = total * equal.size
    print(f"16-bit rounding of the input changes {100 * flips['fp32'] / cells:.2f}% of FP32 codes, "
          f"{100 * flips['int8'] / cells:.2f}% of INT8 codes")


if __name__ == "__main__":
    main()
