"""Codec quality on a folder of audio, through the deployed ONNX pipeline: FP32 and every INT8 variant the model has.

    python benchmarks/quality.py ../shared/audio/dev [--model DIR] [--codebooks 8] [--only cpu-int8] [--json out.json]

For every audio file under DIR: SI-SDR (dB, higher is better), multi-scale log-mel distance (lower is better) and,
when the `visqol-python` package is installed, ViSQOL MOS-LQO in audio mode (both signals resampled to 48 kHz, the
rate ViSQOL's audio model expects), and the frame-rate comb (benchmarks/comb_measure.py: mean level in dB of the lines
at multiples of 86.13 Hz between 2 and 10 kHz above their neighbourhood, and of the tones at fs/8 and fs/4; the
input's own comb is printed alongside, since music can have real lines there).
The reference is the file itself at 44.1 kHz mono, the codec's input.
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
from comb_measure import frame_rate_comb

from apucodec.audio import list_audio_files, read_audio, resample
from apucodec.errors import ApucodecError
from apucodec.metrics import mel_distance, si_sdr
from apucodec.model_dir import default_model_path, load_model_dir
from apucodec.runtime.int8_floor import DEFAULT_FLOOR_DBFS
from apucodec.runtime.pipeline import Codec
from apucodec.runtime.providers import SessionSettings


def visqol_scorer():
    """A function (reference, degraded) -> MOS-LQO at 48 kHz, or None when visqol-python is not installed."""
    try:
        from visqol import VisqolApi  # the visqol-python distribution (pure Python port of ViSQOL v3)
    except ImportError:
        return None

    api = VisqolApi()
    api.create(mode="audio")

    def score(reference: np.ndarray, degraded: np.ndarray) -> float:
        ref48 = resample(reference, 44100, 48000).astype(np.float64)
        deg48 = resample(degraded, 44100, 48000).astype(np.float64)
        return float(api.measure_from_arrays(ref48, deg48, 48000).moslqo)

    return score


def variants(model) -> dict[str, dict[str, object]]:
    """SessionSettings fields per variant the model directory can run: FP32 always; the NPU INT8 encoder (on the
    CPU EP, FP32 decoder) and the CPU INT8 graphs each with the INT8 floor off ("all steps") and at its default."""
    cpu = {"encoder_eps": ("cpu",), "decoder_eps": ("cpu",)}
    out: dict[str, dict[str, object]] = {"fp32": {**cpu, "encoder_graph": "fp32", "decoder_graph": "fp32"}}
    if any(g.precision == "npu-int8" for g in model.step_graphs("encoder")):
        npu = {**cpu, "encoder_graph": "int8", "decoder_graph": "fp32"}
        out["npu-int8 all steps"] = {**npu, "int8_floor_dbfs": -np.inf}
        out["npu-int8 floor"] = {**npu, "int8_floor_dbfs": DEFAULT_FLOOR_DBFS}
    if any(g.precision == "cpu-int8" for g in model.step_graphs("encoder")):
        out["cpu-int8 all steps"] = {**cpu, "int8_floor_dbfs": -np.inf}
        out["cpu-int8 floor"] = {**cpu, "int8_floor_dbfs": DEFAULT_FLOOR_DBFS}
    return out


def evaluate(model_dir: Path, folder: Path, n_codebooks: int | None,
             only: list[str] | None = None) -> dict[str, list[dict[str, float]]]:
    model = load_model_dir(model_dir)
    files = list_audio_files(folder)
    if not files:
        raise ApucodecError(f"{folder}: no audio files")
    visqol = visqol_scorer()
    results: dict[str, list[dict[str, float]]] = {}
    for name, fields in variants(model).items():
        if only and name != "fp32" and not any(name.startswith(o) for o in only):
            continue
        codec = Codec(model, SessionSettings(**fields), warn=None)
        rows = []
        for path in files:
            reference, _ = read_audio(path)
            decoded, result = codec.run_array(reference, n_codebooks)
            row = {"file": path.name, "si_sdr": si_sdr(reference, decoded), "mel": mel_distance(reference, decoded),
                   "notes": result.notes}
            hop = model.config.hop_length
            row.update(frame_rate_comb(decoded, 44100, hop))
            row["input_comb_db"] = frame_rate_comb(reference, 44100, hop)["comb_db"]
            if visqol is not None:
                row["visqol"] = visqol(reference, decoded)
            rows.append(row)
        results[name] = rows
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--codebooks", type=int, default=None)
    parser.add_argument("--only", action="append", default=None,
                        help="run FP32 and the variants whose names start with this (repeatable)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model_dir = default_model_path(args.model)
    try:
        results = evaluate(model_dir, args.folder, args.codebooks, args.only)
    except ApucodecError as exc:
        sys.exit(f"error: {exc}")
    metrics = [k for k in ("si_sdr", "mel", "visqol") if k in results["fp32"][0]]
    print(f"model {model_dir}; codebooks {args.codebooks or 'all'}; ViSQOL "
          f"{'on' if 'visqol' in metrics else 'not installed (pip install visqol-python)'}; INT8 floor "
          f"{DEFAULT_FLOOR_DBFS:g} dBFS where named")
    for metric in metrics:
        print(f"\n{metric}")
        print(f"{'file':44s}" + "".join(f" {name:>19s}" for name in results))
        for i, row in enumerate(results["fp32"]):
            print(f"{row['file'][:44]:44s}" + "".join(f" {results[p][i][metric]:19.3f}" for p in results))
    means = {p: {m: float(np.mean([r[m] for r in rows])) for m in metrics} for p, rows in results.items()}
    print(f"\n{'MEAN':44s}" + "".join(f" {name:>19s}" for name in results))
    for metric in metrics:
        print(f"{metric:44s}" + "".join(f" {means[p][metric]:19.3f}" for p in results))
    combs = {k: float(np.mean([r[k] for r in results["fp32"]])) for k in ("comb_db", "input_comb_db", "fs8_db",
                                                                          "fs4_db")}
    print(f"comb of the FP32 output (dB above the local spectrum, 2-10 kHz): output {combs['comb_db']:.2f}, input "
          f"{combs['input_comb_db']:.2f}; tones fs/8 {combs['fs8_db']:.2f}, fs/4 {combs['fs4_db']:.2f}")
    for name, rows in results.items():
        if name == "fp32":
            continue
        deltas = ", ".join(f"{m} {means[name][m] - means['fp32'][m]:+.3f}" for m in metrics)
        changes = [r["si_sdr"] - f["si_sdr"] for r, f in zip(rows, results["fp32"], strict=True)]
        worst = int(np.argmin(changes))
        fp32_steps = sum(any("FP32 graph" in n for n in r["notes"]) for r in rows)
        print(f"{name} - FP32 (mean): {deltas}; worst file SI-SDR {changes[worst]:+.3f} dB "
              f"({rows[worst]['file']}); files with steps on the FP32 graph: {fp32_steps}")
    if args.json:
        args.json.write_text(json.dumps({"per_file": results, "mean": means}, indent=2))


if __name__ == "__main__":
    main()
