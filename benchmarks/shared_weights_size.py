"""Model directory size with each stage's weights shared by its step graphs vs one copy per step graph.

    python benchmarks/shared_weights_size.py CHECKPOINT [--step-frames 4,128] [--codebooks-dtype float16]

Exports CHECKPOINT twice into a temporary folder, once with every step graph self-contained (the layout before
shared weights) and once with the default shared weights files, and prints each file and the totals side by side.
Both directories are also run on the same audio to show their output is identical. Nothing is kept.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def _sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--step-frames", default="4,64")
    parser.add_argument("--codebooks-dtype", default="float32")
    args = parser.parse_args()
    steps = tuple(int(s) for s in args.step_frames.split(","))

    import numpy as np

    from apucodec.dsp.signals import mixture
    from apucodec.export import export_model
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings

    with tempfile.TemporaryDirectory(prefix="shared-weights-") as tmp:
        dirs = {}
        for label, share in (("inline", False), ("shared", True)):
            dirs[label] = export_model(args.checkpoint, Path(tmp) / label, step_frames=steps, log=None,
                                       codebooks_dtype=args.codebooks_dtype, share_weights=share).path
        sizes = {label: _sizes(path) for label, path in dirs.items()}
        names = sorted(set(sizes["inline"]) | set(sizes["shared"]))
        print(f"{'file':32s} {'inline MB':>10s} {'shared MB':>10s}")
        for name in names:
            cells = [f"{sizes[k][name] / 1e6:10.2f}" if name in sizes[k] else f"{'-':>10s}" for k in sizes]
            print(f"{name:32s} {' '.join(cells)}")
        total = {k: sum(v.values()) for k, v in sizes.items()}
        print(f"{'total':32s} {total['inline'] / 1e6:10.2f} {total['shared'] / 1e6:10.2f}   "
              f"shared/inline = {total['shared'] / total['inline']:.3f}")
        settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",))
        rate = CodecEngine.open(dirs["inline"], settings, warn=None).model.config.sample_rate
        audio = mixture(rate, rate).astype(np.float32)
        outs = [CodecEngine.open(d, settings, warn=None).run_array(audio)[0] for d in dirs.values()]
        print(f"1 s of audio through both: outputs identical to the bit: {bool(np.array_equal(*outs))}")


if __name__ == "__main__":
    main()
