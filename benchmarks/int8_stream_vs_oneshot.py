"""CPU INT8: live stream (the model's live step) vs one-shot codes, per codebook, on held-out audio.

    python benchmarks/int8_stream_vs_oneshot.py [--model DIR] [--dev /work/shared/audio/dev] [--int8-floor -45]

Each clip of --dev (mono, 44.1 kHz) is encoded once one-shot and once streamed in pieces of 2,000 samples by one
`apucodec.load(precision="int8")` Codec on the CPU EP; prints the share of equal codes per codebook (pooled over
all frames) and the clips that differ. With --int8-floor -inf every step runs the INT8 graphs; with the default
floor, quiet steps run FP32, judged per step, so a live step and the one-shot step around it can be judged apart.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

import apucodec
from apucodec.io.audio_read import read_audio

PIECE = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--dev", default="/work/shared/audio/dev")
    parser.add_argument("--int8-floor", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    codec = apucodec.load(args.model, precision="int8", eps={"encoder": "cpu", "decoder": "cpu"},
                          threads=args.threads, int8_floor=args.int8_floor)
    equal = np.zeros(codec.max_codebooks)
    total = 0
    differing = []
    files = sorted(glob.glob(str(Path(args.dev) / "*.wav")))
    for path in files:
        x, _ = read_audio(path, codec.sample_rate)
        one_shot = codec.encode(x).array
        with codec.stream() as s:
            parts = [s.encode(x[i: i + PIECE]) for i in range(0, x.size, PIECE)]
        streamed = np.concatenate([*parts, s.flush().codes], axis=-1)
        same = (streamed == one_shot).sum(axis=1)
        equal += same
        total += one_shot.shape[1]
        if same[0] < one_shot.shape[1]:
            differing.append(f"{Path(path).name} {100 * same[0] / one_shot.shape[1]:.1f}%")
    floor = "default" if args.int8_floor is None else f"{args.int8_floor:g} dBFS"
    print(f"model {codec.model.label}; INT8 graphs {codec.graph_precision()}; int8 floor {floor}; "
          f"{len(files)} clips, {total} frames; streamed at the live step")
    print("codebook   " + " ".join(f"{i + 1:>6d}" for i in range(equal.size)))
    print("equal %    " + " ".join(f"{100 * e / total:6.1f}" for e in equal))
    print("clips whose first codebook differs: " + (", ".join(differing) if differing else "none"))
    codec.close()


if __name__ == "__main__":
    main()
