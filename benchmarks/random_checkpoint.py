"""A random-weight checkpoint of a preset (default: the 32.4M spec config) for benchmarks: no training needed.

    python benchmarks/random_checkpoint.py default.pt [--preset default] [--seed 1234]
    python benchmarks/random_checkpoint.py seed.pt --preset seed --seed-format   # the original project's layout

Like the tests' tiny checkpoint, the codebooks are initialised from data (one train-mode forward pass on generated
audio), so RVQ codes spread as a trained model's do instead of landing on a few random codewords. To compare with
the retired windowed runtime (benchmarks/steps_vs_windows.py), write it with the OLD tree first on PYTHONPATH:
its config reader refuses keys added since (`causal`), while this tree reads the old checkpoints.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--seed-format", action="store_true",
                        help="write a bare state dict in the original APU-Codec key layout (quantizer.codebooks.N)")
    args = parser.parse_args()

    import torch

    from apucodec.codec.checkpoint import save_checkpoint
    from apucodec.codec.model import APUCodec
    from apucodec.contract.config import preset
    from apucodec.dsp.signals import mixture

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # the codebooks' data init sums in a thread-count-dependent order: pin it
    model = APUCodec(preset(args.preset))
    rate = model.config.sample_rate
    audio = torch.from_numpy(mixture(rate, rate).astype("float32")).view(1, 1, -1)
    model.train()
    with torch.no_grad():
        model(audio)
    model.eval()
    if args.seed_format:
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("quantizer.")}
        for i, book in enumerate(model.quantizer.codebooks):
            state[f"quantizer.codebooks.{i}"] = book.clone()
        torch.save(state, args.out)
    else:
        save_checkpoint(args.out, model, step=1)
    print(f"wrote {args.out}: preset {args.preset}, seed {args.seed}, {model.param_count / 1e6:.2f}M parameters")


if __name__ == "__main__":
    main()
