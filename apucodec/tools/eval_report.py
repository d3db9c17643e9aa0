"""The text `apucodec eval` prints: per-clip tables (clips down, systems across), then one mean row per system."""

from __future__ import annotations

from apucodec.tools.eval_quality import EvalResult

LABELS = {"si_sdr": "SI-SDR dB", "mel": "mel dist", "visqol": "ViSQOL", "comb_db": "comb dB", "fs8_db": "fs/8 dB",
          "fs4_db": "fs/4 dB", "kbps": "kbps"}
PER_CLIP = ("si_sdr", "mel", "visqol")


def _width(names: list[str]) -> int:
    return max([10, *(len(n) for n in names)])


def format_result(result: EvalResult) -> str:
    systems = list(result.systems)
    clip_w = min(44, max(len(c) for c in result.clips))
    col = _width(systems)
    lines = []
    for metric in PER_CLIP:
        if metric == "visqol" and not result.visqol:
            continue
        lines.append(f"{LABELS[metric]} per clip")
        lines.append(f"{'clip':{clip_w}s}" + "".join(f"  {s:>{col}s}" for s in systems))
        for i, clip in enumerate(result.clips):
            lines.append(f"{clip[:clip_w]:{clip_w}s}"
                         + "".join(f"  {result.systems[s][i][metric]:{col}.3f}" for s in systems))
        lines.append("")
    means = result.means()
    metrics = [m for m in LABELS if any(m in means[s] for s in systems)]
    name_w = max(len("mean over N clips"), *(len(s) for s in systems))
    lines.append(f"{f'mean over {len(result.clips)} clips':{name_w}s}" + "".join(f"  {LABELS[m]:>9s}" for m in metrics))
    for s in systems:
        lines.append(f"{s:{name_w}s}" + "".join(f"  {means[s][m]:9.3f}" for m in metrics))
    first = next(iter(means.values()))
    lines.append(f"input's own comb: {first['input_comb_db']:.2f} dB (comb: frame-rate lines 2-10 kHz above their "
                 "neighbourhood; fs/8, fs/4: the upsamplers' tones)")
    if not result.visqol and not result.visqol_skipped:
        lines.append("ViSQOL: not installed (pip install 'apucodec[quality]')")
    floored = {s: sum(any("FP32 graph" in n for n in r["notes"]) for r in rows) for s, rows in result.systems.items()}
    if any(floored.values()):
        lines.append("clips with quiet steps on the FP32 graph (INT8 floor): "
                     + ", ".join(f"{s} {n}" for s, n in floored.items() if n))
    return "\n".join(lines)
