"""An independent check of `apucodec eval`'s SI-SDR on one clip of a real folder.

    apucodec eval DIR --json > eval.json
    python benchmarks/eval_sisdr_check.py DIR/CLIP.wav eval.json

Runs the clip through the public API (`apucodec.load()`, encode then decode: the same model and graphs `eval` runs
by default) and scores it with the correlation form of SI-SDR, 10 log10(rho^2 / (1 - rho^2)), which shares no code
with apucodec/dsp/metrics.py's projection form; prints both and their difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

import apucodec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("eval_json", type=Path)
    args = parser.parse_args()
    data = json.loads(args.eval_json.read_text())
    system = next(k for k in data["per_clip"] if not k.startswith("opus"))
    row = next(r for r in data["per_clip"][system] if r["clip"] == args.clip.name)
    x, rate = sf.read(str(args.clip), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if rate != 44100:
        x = soxr.resample(x, rate, 44100)
    codec = apucodec.load()
    y = codec.decode(codec.encode(x.astype(np.float32), sample_rate=44100)).astype(np.float64)
    rho = np.corrcoef(x, y[: x.size])[0, 1]
    independent = 10 * np.log10(rho**2 / (1 - rho**2))
    print(f"{args.clip.name}: eval ({system}) {row['si_sdr']:.4f} dB, independent (API + correlation formula) "
          f"{independent:.4f} dB, difference {abs(independent - row['si_sdr']):.2e} dB")


if __name__ == "__main__":
    main()
