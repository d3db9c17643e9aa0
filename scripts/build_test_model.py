"""Build the tiny exported model the runtime tests load without torch (tests/data/tiny-model).

    python scripts/build_test_model.py [--out tests/data/tiny-model]

The runtime tests (sessions, streaming, .apc files, the API, the CLI, workers) need a real model directory, not
the torch model behind it; exporting one in every test session made torch a test dependency of the runtime, which
never imports it. So the model is exported once, by the project's own exporter, and checked in. It is a smaller
cousin of the "tiny" preset (same sample rate, hop, latent size and RVQ shape, narrower convolutions) so the whole
directory stays a few hundred KB.

What keeps it honest: tests/test_test_model.py checks (fast) that the checked-in files match their manifest and
that the manifest records this script's RECIPE, and (slow, needs torch) that exporting RECIPE again gives the same
graph, weight and codebook bytes. Change the recipe or the exporter's output and that test says to run this script.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "tiny-model"

# Everything that decides the model's bytes. Codebooks are initialised from generated audio (one train-mode
# forward, as the first training step does), so codes spread over the codebooks like a real model's.
RECIPE = {"preset": "tiny", "seed": 1234, "init_audio_seconds": 1.0, "step_frames": [4, 8]}


def recipe_config():  # noqa: ANN201 - a CodecConfig
    from apucodec.contract.config import preset

    return preset(RECIPE["preset"])


def build_model():  # noqa: ANN201 - an eval-mode APUCodec
    """The recipe's torch model (random weights, data-initialised codebooks)."""
    import numpy as np
    import torch

    from apucodec.codec.model import APUCodec
    from apucodec.dsp.signals import mixture

    cfg = recipe_config()
    audio = mixture(int(RECIPE["init_audio_seconds"] * cfg.sample_rate), cfg.sample_rate).astype(np.float32)
    with torch.random.fork_rng():
        torch.manual_seed(RECIPE["seed"])
        model = APUCodec(cfg)
        model.train()
        with torch.no_grad():
            model(torch.from_numpy(audio).reshape(1, 1, -1))
    return model.eval()


def export(out: Path) -> Path:
    """Export the recipe's model into `out` (replaced), on one torch thread (the bytes do not depend on it)."""
    import torch

    from apucodec.export import export_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        export_model(build_model(), out, step_frames=tuple(RECIPE["step_frames"]), force=True, log=None)
    finally:
        torch.set_num_threads(before)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        built = export(Path(tmp) / "model")
        if args.out.exists():
            shutil.rmtree(args.out)
        shutil.copytree(built, args.out)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
