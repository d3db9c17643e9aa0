"""Codec quality on a folder of audio, through the deployed ONNX pipeline, for the FP32 and the INT8 encoder.

    python benchmarks/quality.py ../shared/audio/dev [--model DIR] [--codebooks 8] [--json out.json]

For every audio file under DIR: SI-SDR (dB, higher is better), multi-scale log-mel distance (lower is better) and,
when the `visqol-python` package is installed, ViSQOL MOS-LQO in audio mode (both signals resampled to 48 kHz, the
rate ViSQOL's audio model expects), and the frame-rate comb (benchmarks/comb_measure.py: mean level in dB of the lines
at multiples of 86.13 Hz between 2 and 10 kHz above their neighbourhood, and of the tones at fs/8 and fs/4; the
input's own comb is printed alongside, since music can have real lines there).
The reference is the file itself at 44.1 kHz mono, the codec's input.
Both encoder graphs run on the CPU EP here; the INT8 row is there because on an APU that graph runs on the NPU, and
its cost in quality is what the NPU placement trades for speed.
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
from apucodec.model_dir import load_model_dir
from apucodec.model_location import locate_model
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


def evaluate(model_dir: Path, folder: Path, n_codebooks: int | None) -> dict[str, list[dict[str, float]]]:
    model = load_model_dir(model_dir)
    int8 = any(g.precision == "npu-int8" for g in model.step_graphs("encoder"))
    graphs = ["fp32", "int8"] if int8 else ["fp32"]
    files = list_audio_files(folder)
    if not files:
        raise ApucodecError(f"{folder}: no audio files")
    visqol = visqol_scorer()
    results: dict[str, list[dict[str, float]]] = {}
    for graph in graphs:
        codec = Codec(model, SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), encoder_graph=graph),
                      warn=None)
        rows = []
        for path in files:
            reference, _ = read_audio(path)
            decoded, _ = codec.run_array(reference, n_codebooks)
            row = {"file": path.name, "si_sdr": si_sdr(reference, decoded), "mel": mel_distance(reference, decoded)}
            hop = model.config.hop_length
            row.update(frame_rate_comb(decoded, 44100, hop))
            row["input_comb_db"] = frame_rate_comb(reference, 44100, hop)["comb_db"]
            if visqol is not None:
                row["visqol"] = visqol(reference, decoded)
            rows.append(row)
        results[graph] = rows
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--codebooks", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model_dir = locate_model(args.model).path
    try:
        results = evaluate(model_dir, args.folder, args.codebooks)
    except ApucodecError as exc:
        sys.exit(f"error: {exc}")
    metrics = [k for k in ("si_sdr", "mel", "visqol", "comb_db", "fs8_db", "fs4_db") if k in results["fp32"][0]]
    print(f"model {model_dir}; codebooks {args.codebooks or 'all'}; ViSQOL "
          f"{'on' if 'visqol' in metrics else 'not installed (pip install visqol-python)'}")
    header = f"{'file':44s}" + "".join(f" {p + ' ' + m:>14s}" for p in results for m in metrics)
    print(header)
    for i, row in enumerate(results["fp32"]):
        cells = "".join(f" {results[p][i][m]:14.3f}" for p in results for m in metrics)
        print(f"{row['file'][:44]:44s}{cells}")
    means = {p: {m: float(np.mean([r[m] for r in rows])) for m in metrics} for p, rows in results.items()}
    print(f"{'MEAN':44s}" + "".join(f" {means[p][m]:14.3f}" for p in results for m in metrics))
    input_comb = float(np.mean([r["input_comb_db"] for r in results["fp32"]]))
    print(f"comb (dB above the local spectrum, 2-10 kHz): output {means['fp32']['comb_db']:.2f}, "
          f"input {input_comb:.2f}; tones fs/8 {means['fp32']['fs8_db']:.2f}, fs/4 {means['fp32']['fs4_db']:.2f}")
    if "int8" in means:
        deltas = ", ".join(f"{m} {means['int8'][m] - means['fp32'][m]:+.3f}" for m in metrics)
        print(f"INT8 - FP32: {deltas}")
    if args.json:
        args.json.write_text(json.dumps({"per_file": results, "mean": means}, indent=2))


if __name__ == "__main__":
    main()
