"""Which training option lowers the frame-rate comb: short CPU trainings of one preset, one option changed at a time.

    python benchmarks/comb_options.py [--data /work/shared/audio/train] [--dev /work/shared/audio/dev]
        [--preset small] [--minutes 3] [--options baseline icnr stft2]

Every option trains from the same seed, data order and wall-time budget (a step budget would favour whichever option
is slower per step less than it should on a shared machine; --steps switches to a fixed step count), then the torch
model reconstructs the first 10 s of every dev file. Printed per option: SI-SDR and mel distance (the quality the
option must not hurt) and the comb (benchmarks/comb_measure.py) of the output against the input's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from comb_measure import frame_rate_comb

from apucodec.codec.losses import LossWeights
from apucodec.codec.train import TrainSettings, train
from apucodec.contract.config import preset
from apucodec.dsp.metrics import mel_distance, si_sdr
from apucodec.io.audio_read import list_audio_files, read_audio

OPTIONS = {
    # name: (config changes, loss weights)
    "baseline": ({}, LossWeights()),
    "icnr": ({"upsample_init": "icnr"}, LossWeights()),
    "stft2": ({}, LossWeights(stft=2.0)),
    "icnr_stft2": ({"upsample_init": "icnr"}, LossWeights(stft=2.0)),
    "no_l1": ({}, LossWeights(l1=0.0)),
}


@torch.no_grad()
def score(model: torch.nn.Module, dev: Path, seconds: float = 10.0) -> dict[str, float]:
    model.eval()
    rows = []
    for path in list_audio_files(dev):
        audio, _info = read_audio(path, model.config.sample_rate)
        rate = model.config.sample_rate
        audio = audio[: int(seconds * rate)]
        decoded = model(torch.from_numpy(audio.astype(np.float32)).view(1, 1, -1)).audio.view(-1).numpy()
        comb = frame_rate_comb(decoded, rate, model.config.hop_length)
        rows.append({"si_sdr": si_sdr(audio, decoded), "mel": mel_distance(audio, decoded, rate), **comb,
                     "input_comb_db": frame_rate_comb(audio, rate, model.config.hop_length)["comb_db"]})
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/audio/train"))
    parser.add_argument("--dev", type=Path, default=Path("/work/shared/audio/dev"))
    parser.add_argument("--preset", default="small")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=None, help="a fixed step count instead of the time budget")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-seconds", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 wastes least on a loaded machine)")
    parser.add_argument("--eval-seconds", type=float, default=10.0, help="seconds of each dev file to score")
    parser.add_argument("--options", nargs="+", default=["baseline", "icnr", "stft2"], choices=sorted(OPTIONS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = preset(args.preset)
    budget = f"{args.minutes} min each" if args.steps is None else f"{args.steps} steps each"
    print(f"preset {args.preset}; {budget}; batch {args.batch_size} x {args.segment_seconds} s; dev {args.dev}")
    print(f"{'option':12s} {'steps':>6s} {'si_sdr':>8s} {'mel':>7s} {'comb_db':>8s} {'fs8_db':>7s} {'fs4_db':>7s} "
          f"{'input comb':>10s}", flush=True)
    for name in args.options:
        changes, weights = OPTIONS[name]
        config = dataclasses.replace(base, **changes)
        settings = TrainSettings(steps=1_000_000 if args.steps is None else args.steps, batch_size=args.batch_size,
                                 segment_seconds=args.segment_seconds, lr=1e-3, warmup_steps=50, val_every=10**9,
                                 checkpoint_every=10**9, log_every=10**9,
                                 max_minutes=args.minutes if args.steps is None else None, loss_weights=weights)
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            result = train(args.data, Path(tmp) / "c.pt", config, settings, log=lambda m: None)
        m = score(result.model, args.dev, args.eval_seconds)
        print(f"{name:12s} {result.steps_done:6d} {m['si_sdr']:8.2f} {m['mel']:7.3f} {m['comb_db']:8.2f} "
              f"{m['fs8_db']:7.2f} {m['fs4_db']:7.2f} {m['input_comb_db']:10.2f}  ({time.monotonic() - started:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
