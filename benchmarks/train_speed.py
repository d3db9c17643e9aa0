"""Training speed per step, every variant measured side by side in one run: segments per second.

    python benchmarks/train_speed.py [--preset small] [--batch-size 8] [--segment-seconds 0.5] [--rounds 6]
        [--steps-per-round 3] [--variants fp32 bf16 fp32-workers1 bf16-workers1] [--compile]

"fp32" is the loop as it was before this benchmark existed (float32 eager, batches prepared in the loop); the
others change one thing each. The variants run in interleaved rounds (A B C, A B C, ...) after one warm-up step
each (several for --compile, whose first steps compile), so a machine whose load drifts (this one is shared) biases
none of them; the reported time per step is the median over all measured steps. Every variant runs the exact step
`apucodec train` runs (codec.step) on the same generated audio, from the same initial weights.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from apucodec.codec.data import SegmentSource
from apucodec.codec.losses import LossWeights
from apucodec.codec.model import APUCodec
from apucodec.codec.sampling import make_loader
from apucodec.codec.step import apply_gradients, bf16_native, forward_losses
from apucodec.contract.config import preset

VARIANTS = {  # name: (precision, DataLoader workers, torch.compile)
    "fp32": ("fp32", 0, False),
    "bf16": ("bf16", 0, False),
    "fp32-workers1": ("fp32", 1, False),
    "bf16-workers1": ("bf16", 1, False),
    "bf16-compile": ("bf16", 0, True),
    "fp32-compile": ("fp32", 0, True),
}


def write_audio(folder: Path, seconds: float = 20.0, files: int = 3) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 44100)) / 44100
    for i in range(files):
        audio = 0.2 * np.sin(2 * np.pi * (110 * (i + 1)) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(folder / f"clip{i}.wav", audio.astype(np.float32), 44100)


class Runner:
    def __init__(self, name: str, source: SegmentSource, args: argparse.Namespace, total_steps: int) -> None:
        self.name = name
        self.precision, workers, compiled = VARIANTS[name]
        torch.manual_seed(0)
        self.model = APUCodec(preset(args.preset)).train()
        if compiled:
            self.model.encoder.compile()
            self.model.decoder.compile()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-4, betas=(0.8, 0.99))
        self.batches = iter(make_loader(source, args.batch_size, seed=0, start=0, end=total_steps, workers=workers))
        self.times: list[float] = []

    def step(self, measure: bool) -> None:
        started = time.perf_counter()
        batch = next(self.batches)  # waiting for data counts: starving the model is what workers should prevent
        result = forward_losses(self.model, batch, 44100, LossWeights(), self.precision)
        apply_gradients(self.model, self.optimizer, result.loss, 1.0)
        if measure:
            self.times.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps-per-round", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["fp32", "bf16", "fp32-workers1", "bf16-workers1"],
                        choices=sorted(VARIANTS))
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variants")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = list(args.variants) + (["fp32-compile", "bf16-compile"] if args.compile else [])
    warmup = 3
    total = warmup + args.rounds * args.steps_per_round
    config = preset(args.preset)
    segment = int(round(args.segment_seconds * config.sample_rate / config.hop_length)) * config.hop_length
    with tempfile.TemporaryDirectory() as tmp:
        write_audio(Path(tmp))
        source = SegmentSource(tmp, segment, sample_rate=config.sample_rate, log=lambda m: None)
        runners = [Runner(name, source, args, total) for name in variants]
        for runner in runners:
            for _ in range(warmup):
                runner.step(measure=False)
        for _ in range(args.rounds):
            for runner in runners:
                for _ in range(args.steps_per_round):
                    runner.step(measure=True)
    print(f"preset {args.preset} ({runners[0].model.param_count:,} parameters), batch {args.batch_size} x "
          f"{segment} samples, {torch.get_num_threads()} threads, native bf16 on this CPU: "
          f"{bf16_native(torch.device('cpu'))}; {args.rounds} interleaved rounds x {args.steps_per_round} steps")
    base = statistics.median(runners[0].times)
    print(f"{'variant':16s} {'s/step':>8s} {'segments/s':>11s} {'vs ' + runners[0].name:>10s}")
    for runner in runners:
        per_step = statistics.median(runner.times)
        print(f"{runner.name:16s} {per_step:8.3f} {args.batch_size / per_step:11.2f} {base / per_step:9.2f}x")


if __name__ == "__main__":
    main()
