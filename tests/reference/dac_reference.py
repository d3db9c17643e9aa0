"""Reference side of the DAC parity tests: run ONLY under the reference venv (descript-audio-codec installed).

Builds `dac.DAC(**kwargs)` with DAC's own constructor, gives it seeded random weights, saves it as DAC's users do
(`model.save(path, package=False)`), and for each input (.npy float32 mono at the model's rate) writes DAC's own
`model.encode(model.preprocess(x, sr))` codes, the decode of those codes (`quantizer.from_codes` -> `decode`) and
the decode of the `z` that `encode` returned, into one .npz. Optionally times eager encode+decode.

    python dac_reference.py --kwargs '{"encoder_dim": 8, ...}' --seed 0 --checkpoint ck.pth --out ref.npz in.npy
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def build(kwargs: dict, seed: int) -> torch.nn.Module:
    import dac

    torch.manual_seed(seed)
    model = dac.DAC(**kwargs)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha"):
                p.uniform_(0.5, 2.0)      # Snake's frequency, away from its all-ones init
            elif name.endswith("bias"):
                p.normal_(0.0, 0.02)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kwargs", default="{}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="where to save the model (DAC.save, package=False); omit to skip")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--time", action="store_true", help="also time eager encode+decode of each input")
    parser.add_argument("inputs", nargs="*")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build(json.loads(args.kwargs), args.seed)
    if args.checkpoint:
        model.save(args.checkpoint, package=False)
    results: dict[str, np.ndarray] = {}
    with torch.no_grad():
        if args.time:  # warm-up: first-call allocations are not what a user pays per clip
            model.decode(model.encode(model.preprocess(torch.zeros(1, 1, model.sample_rate), model.sample_rate))[0])
        for i, path in enumerate(args.inputs):
            x = torch.from_numpy(np.load(path).astype(np.float32)).view(1, 1, -1)
            start = time.perf_counter()
            z, codes, *_ = model.encode(model.preprocess(x, model.sample_rate))
            encoded = time.perf_counter()
            audio_z = model.decode(z)
            decoded = time.perf_counter()
            audio_codes = model.decode(model.quantizer.from_codes(codes)[0])
            results[f"codes_{i}"] = codes[0].numpy().astype(np.int32)
            results[f"audio_{i}"] = audio_codes[0, 0].numpy()
            results[f"audio_z_{i}"] = audio_z[0, 0].numpy()
            results[f"seconds_{i}"] = np.array([encoded - start, decoded - encoded])
    np.savez(args.out, **results)


if __name__ == "__main__":
    main()
