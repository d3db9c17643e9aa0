"""Codec quality on a folder of audio, through the deployed ONNX pipeline: FP32 and every INT8 variant the model has.

    python benchmarks/quality.py /path/to/dev [--model DIR] [--codebooks 8] [--only cpu-int8] [--opus 8] [--json out]

The measuring is `apucodec eval --variants all` (apucodec/tools/eval_quality.py: SI-SDR, mel distance, ViSQOL when
visqol-python is installed, the frame-rate comb of output and input, bitrate); this script adds each INT8 variant's
difference from FP32 side by side: mean deltas, the worst clip, and how many clips had steps on the FP32 graph.
Every variant runs on the CPU EP. The NPU INT8 encoder is there because on an APU it runs on the NPU, and its cost
in quality is what the NPU placement trades for speed. The CPU INT8 graphs are what the CPU EP runs by default.
Each INT8 variant runs twice: every step in INT8 (floor off), and with quiet steps on the FP32 graph (the runtime's
default INT8 floor, apucodec/runtime/int8_floor.py), so the floor's effect is measured side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from apucodec.errors import ApucodecError
from apucodec.model.location import locate_model
from apucodec.tools.eval_quality import evaluate, systems_for
from apucodec.tools.eval_report import format_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--codebooks", type=int, default=None)
    parser.add_argument("--only", action="append", default=[],
                        help="run FP32 and the variants whose names start with this (repeatable)")
    parser.add_argument("--opus", type=float, action="append", default=[], help="Opus at this kbps as well")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model_dir = locate_model(args.model).path
    try:
        systems = systems_for([model_dir], [args.codebooks], args.opus, variants="all", only=args.only)
        result = evaluate(args.folder, systems)
    except ApucodecError as exc:
        sys.exit(f"error: {exc}")
    print(f"model {model_dir}; codebooks {args.codebooks or 'all'}")
    print(format_result(result))
    names = list(result.systems)
    fp32 = next(n for n in names if n.endswith("fp32"))
    means = result.means()
    metrics = [m for m in ("si_sdr", "mel", "visqol") if m in means[fp32]]
    for name in names:
        if name == fp32 or name.startswith("opus"):
            continue
        rows, base = result.systems[name], result.systems[fp32]
        deltas = ", ".join(f"{m} {means[name][m] - means[fp32][m]:+.3f}" for m in metrics)
        changes = [r["si_sdr"] - f["si_sdr"] for r, f in zip(rows, base, strict=True)]
        worst = int(np.argmin(changes))
        fp32_steps = sum(any("FP32 graph" in n for n in r["notes"]) for r in rows)
        print(f"{name} - FP32 (mean): {deltas}; worst file SI-SDR {changes[worst]:+.3f} dB "
              f"({rows[worst]['clip']}); files with steps on the FP32 graph: {fp32_steps}")
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=2))


if __name__ == "__main__":
    main()
