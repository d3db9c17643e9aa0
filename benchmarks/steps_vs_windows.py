"""`apucodec bench` before (static context windows) and after (step graphs), side by side in one run.

    python benchmarks/steps_vs_windows.py --old-tree <checkout of 148b4b8> --old-model <its export> \
        --new-model <step-graph export of the same checkpoint> [--seconds 10] [--rounds 2]

The windowed runtime is gone from this tree, so the "before" side runs from a checkout of the last commit that had
it (148b4b8: `git worktree add ../wt-old 148b4b8`), exported with that checkout's own `apucodec export` from the
same checkpoint. Each side is a fresh `python -m apucodec bench --json` process with the package of its tree first
on PYTHONPATH (so nothing of one version leaks into the other), both graph stages on the CPU EP; the sides
alternate (old, new, old, new, ...) so that drifting load on a shared machine hits both alike. Printed per run and
as the median over rounds: RTF sequential and pipelined, each graph stage's busy seconds (sequential run), the
calls it made (windows or steps), the GFLOP it did per the manifest, and the process's peak RSS; then new/old
ratios. A ratio below 1 means the step graphs are faster (or smaller).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_once(tree: Path, model: Path, seconds: float, extra: list[str]) -> dict:
    """One `apucodec bench --json` process run from `tree`; its report."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "apucodec", "bench", "--model", str(model), "--seconds", f"{seconds:g}",
               "--json", "--encoder-ep", "cpu", "--decoder-ep", "cpu", *extra]
    proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench from {tree} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def summary(report: dict) -> dict[str, float]:
    """The figures compared, from either version's JSON (windows: per window; steps: per step)."""
    seq, pipe = report["sequential"], report["pipelined"]
    per_call = report.get("gflop_per_step") or report.get("gflop_per_window") or {}
    row = {"rtf_seq": seq["rtf"], "rtf_pipe": pipe["rtf"], "rss_mb": (report["peak_rss_bytes"] or 0) / 2**20}
    for stage in ("encoder", "decoder"):
        stats = seq["stages"][stage]
        calls = stats.get("calls", stats.get("windows"))
        row[f"{stage}_busy"] = stats["busy_seconds"]
        row[f"{stage}_calls"] = calls
        row[f"{stage}_gflop"] = per_call.get(stage, float("nan")) * calls
    return row


def describe(report: dict) -> str:
    if "step_frames" in report:
        return f"step graphs of {report['step_frames']} frames ({report['step_seconds']:.2f} s)"
    return f"static windows of {report['window_seconds']:.2f} s (chunk {report['chunk_seconds']:.2f} s)"


COLUMNS = [("rtf_seq", "RTF seq", "{:8.3f}"), ("rtf_pipe", "RTF pipe", "{:8.3f}"),
           ("encoder_busy", "enc busy s", "{:10.3f}"), ("decoder_busy", "dec busy s", "{:10.3f}"),
           ("encoder_calls", "enc calls", "{:9.0f}"), ("decoder_calls", "dec calls", "{:9.0f}"),
           ("encoder_gflop", "enc GFLOP", "{:9.1f}"), ("decoder_gflop", "dec GFLOP", "{:9.1f}"),
           ("rss_mb", "peak RSS MB", "{:11.0f}")]


def line(label: str, row: dict[str, float], ratio: bool = False) -> str:
    return f"{label:16s} " + " ".join((f"{row[key]:.3f}" if ratio else fmt.format(row[key])).rjust(len(title))
                                      for key, title, fmt in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", type=Path, required=True, help="checkout of the windowed runtime (148b4b8)")
    parser.add_argument("--old-model", type=Path, required=True, help="its export (format 1, static windows)")
    parser.add_argument("--new-tree", type=Path, default=ROOT, help="checkout with step graphs (default: this one)")
    parser.add_argument("--new-model", type=Path, required=True, help="its export of the same checkpoint")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads per session (0: ORT default)")
    args = parser.parse_args()
    extra = ["--threads", str(args.threads)]
    # each side runs in its own tree: make every path absolute first
    sides = {"old (windows)": (args.old_tree.resolve(), args.old_model.resolve()),
             "new (steps)": (args.new_tree.resolve(), args.new_model.resolve())}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    print(f"apucodec bench --seconds {args.seconds:g}, both stages on the CPU EP, {args.rounds} rounds, sides "
          f"alternating; {os.cpu_count()} CPU cores")
    print(f"{'run':16s} " + " ".join(title for _, title, _ in COLUMNS))
    started = time.perf_counter()
    for round_index in range(args.rounds):
        for name, (tree, model) in sides.items():
            report = bench_once(tree, model, args.seconds, extra)
            if round_index == 0:
                print(f"# {name}: {describe(report)}; model {report['model_id']}")
            rows[name].append(summary(report))
            print(line(f"{name.split()[0]} round {round_index + 1}", rows[name][-1]), flush=True)
    medians = {name: {key: statistics.median(r[key] for r in runs) for key, _, _ in COLUMNS}
               for name, runs in rows.items()}
    print()
    for name, row in medians.items():
        print(line(f"{name.split()[0]} median", row))
    old, new = medians["old (windows)"], medians["new (steps)"]
    print(line("new / old", {key: new[key] / old[key] if old[key] else float("nan") for key, _, _ in COLUMNS},
               ratio=True))
    work_old = old["encoder_gflop"] + old["decoder_gflop"]
    work_new = new["encoder_gflop"] + new["decoder_gflop"]
    print(f"work: {work_new:.0f} vs {work_old:.0f} GFLOP (new/old {work_new / work_old:.3f}); RTF new/old: sequential "
          f"{new['rtf_seq'] / old['rtf_seq']:.3f}, pipelined {new['rtf_pipe'] / old['rtf_pipe']:.3f} "
          f"(medians of {args.rounds} rounds; {time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
