"""Peak memory of a pooled-norm (seed) model's offline run through whole-sequence graphs, per input length.

    python benchmarks/whole_sequence_memory.py MODEL_DIR [--seconds 10,60,600] [--max-seconds S] [--graphs fp32]

Each length runs in a fresh process (`apucodec run`'s engine, CPU EP, encoder + decoder, generated audio), which
reports its resident memory after opening the sessions and its peak during the run (Linux: VmHWM, reset through
/proc/self/clear_refs once the sessions are open); the peak above the opened
sessions, per second of audio, divided by the widest layer's float32 bytes per second, is the factor
apucodec/runtime/segmented_stages.py budgets with. Inputs past the per-run limit are cut into segments: the run's note
says so, and the peak stays at one segment's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.stage_plan import SessionSettings
from apucodec.runtime.segmented_stages import (BYTES_PER_WIDEST_ACTIVATION, segment_frames,
                                             widest_activation_bytes_per_second)
from apucodec.dsp.signals import signal
model, seconds, limit = sys.argv[1], float(sys.argv[2]), (float(sys.argv[3]) if sys.argv[3] != "none" else None)
graph = sys.argv[4]
codec = CodecEngine.open(model, SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), whole_max_seconds=limit,
                                          encoder_graph=graph, decoder_graph=graph), warn=None)
def status(key):
    with open("/proc/self/status") as fh:
        return next(int(x.split()[1]) * 1024 for x in fh if x.startswith(key))
n = int(seconds * codec.sample_rate)
piece = signal("speech_like", codec.sample_rate * 10, codec.sample_rate).astype(np.float32)
audio = np.resize(piece, n)
opened = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM): opening the sessions has its own peak
    fh.write("5")
started = time.perf_counter()
_, result = codec.run_array(audio)
peak = status("VmHWM:")
print(json.dumps({"seconds": seconds, "opened_mb": opened / 1e6, "peak_mb": peak / 1e6,
                  "run_mb_per_s": (peak - opened) / seconds / 1e6, "wall_s": time.perf_counter() - started,
                  "widest_mb_per_s": widest_activation_bytes_per_second(codec.config) / 1e6,
                  "budget_factor": BYTES_PER_WIDEST_ACTIVATION,
                  "segment_s": segment_frames(codec.config, limit)[0] / codec.config.frame_rate,
                  "notes": result.notes}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--seconds", default="10,60,600")
    parser.add_argument("--max-seconds", default="none", help="per-run limit (default: from available memory)")
    parser.add_argument("--graphs", choices=("fp32", "auto"), default="fp32",
                        help="fp32: the FP32 whole-sequence graphs (the budget's basis); auto: the runtime's choice "
                             "(CPU INT8 where the model directory has it)")
    args = parser.parse_args()
    print(f"{'audio s':>8} {'opened MB':>10} {'peak MB':>9} {'run MB':>8} {'segment s':>9} {'wall s':>7}")
    rows = []
    for seconds in (float(s) for s in args.seconds.split(",")):
        out = subprocess.run([sys.executable, "-c", CHILD, args.model, str(seconds), args.max_seconds, args.graphs],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{seconds:8.0f} {r['opened_mb']:10.0f} {r['peak_mb']:9.0f} {r['peak_mb'] - r['opened_mb']:8.0f} "
              f"{r['segment_s']:9.1f} {r['wall_s']:7.1f}")
        for note in r["notes"]:
            print(f"         note: {note}")
    # The growth per second between lengths that ran whole (fixed costs cancel), in widest-activation units.
    whole = [r for r in rows if r["seconds"] <= r["segment_s"]]
    for a, b in zip(whole, whole[1:], strict=False):
        per_s = (b["peak_mb"] - b["opened_mb"] - a["peak_mb"] + a["opened_mb"]) / (b["seconds"] - a["seconds"])
        print(f"{a['seconds']:.0f} s -> {b['seconds']:.0f} s: {per_s:.1f} MB more per second of audio = "
              f"{per_s / r['widest_mb_per_s']:.2f} x the widest layer's {r['widest_mb_per_s']:.1f} MB/s "
              f"(runtime/segmented_stages.py budgets {r['budget_factor']:.1f} x)")


if __name__ == "__main__":
    main()
