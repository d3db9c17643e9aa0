"""CPU INT8 vs FP32, per graph and end to end, measured side by side in one run.

    python benchmarks/cpu_int8.py --model DIR [--calib FOLDER] [--quality FOLDER] [--repeats 5] [--threads 0]

Speed: each graph (encoder, decoder) as FP32 and as CPU INT8, timed on the same input in interleaved rounds (median
of --repeats after a warm-up), with the ratio and the INT8 output's SNR against FP32. For each, the op counts of
the graph ORT actually runs (its optimized graph): integer kernels (QLinearConv) vs convolutions left in float.

If --calib is given, the decoder is also quantized *without* the polyphase ConvTranspose rewrite into a temporary
file and timed beside the others: that row is the decoder as onnxruntime.quantization alone leaves it.
If the model directory has no CPU INT8 graphs yet and --calib is given, they are made first (`quantize_cpu`, in
a temporary copy of the directory).

Quality (--quality FOLDER): every file through encode -> RVQ -> decode with FP32 graphs and with CPU INT8 graphs
(runtime windowing, benchmarks/graph_runner.py): SI-SDR, log-mel distance and, if installed, ViSQOL; per file
and mean, and the worst per-file SI-SDR change (a collapsing clip shows there, not in the mean). With
--quiet-fallback DBFS a third variant runs INT8 but sends windows quieter than DBFS through the FP32 graphs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from apucodec.calibration.windows import collect_windows

from apucodec.audio import list_audio_files, read_audio
from apucodec.calibration.cpu_int8 import quantize_graph_cpu_int8
from apucodec.calibration.cpu_quantize import CPU_INT8_FILES, quantize_cpu
from apucodec.calibration.feeds import decoder_feeds
from apucodec.metrics import mel_distance, si_sdr, snr_db
from apucodec.model_dir import ModelDir, load_model_dir
from apucodec.runtime.rvq import NumpyRVQ

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph_runner import codec_run, cpu_session  # noqa: E402  (sibling benchmark module)
from quality import visqol_scorer  # noqa: E402


def optimized_ops(path: Path, threads: int) -> Counter[str]:
    with tempfile.TemporaryDirectory() as tmp:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        if threads:
            options.intra_op_num_threads = threads
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return Counter(n.op_type for n in onnx.load(str(Path(tmp) / "opt.onnx")).graph.node)


def time_variants(variants: dict[str, Path], feed: dict[str, np.ndarray], repeats: int,
                  threads: int) -> dict[str, tuple[float, np.ndarray]]:
    sessions = {name: cpu_session(path, threads) for name, path in variants.items()}
    outputs = {name: s.run(None, feed)[0] for name, s in sessions.items()}       # warm-up
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(repeats):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feed)
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), outputs[name]) for name, t in times.items()}


def speed_table(model: ModelDir, calib: Path | None, repeats: int, threads: int, work: Path) -> None:
    windows = collect_windows(calib, model.geometry.window_samples, count=8, seed=1) if calib else None
    audio = (windows.evaluation[0] if windows else
             (0.1 * np.random.default_rng(0).standard_normal((1, 1, model.geometry.window_samples))).astype(np.float32))
    encoder = cpu_session(model.path_of("encoder"), threads)
    latent_feed = next(decoder_feeds(encoder, model.codebooks(), [audio], "audio", "latent"))
    stages = {"encoder": ({"FP32": model.path_of("encoder"), "CPU INT8": model.path_of("encoder_cpu_int8")},
                          {encoder.get_inputs()[0].name: audio}),
              "decoder": ({"FP32": model.path_of("decoder"), "CPU INT8": model.path_of("decoder_cpu_int8")},
                          latent_feed)}
    if windows:
        plain = work / "decoder.no-polyphase.onnx"
        feeds = decoder_feeds(encoder, model.codebooks(), windows.calibration, "audio", "latent")
        quantize_graph_cpu_int8(model.path_of("decoder"), plain, feeds, polyphase=False)
        stages["decoder"][0]["CPU INT8, ConvTranspose as is"] = plain
    print(f"per graph, one {model.geometry.window_samples}-sample window, median of {repeats} interleaved runs, "
          f"threads {threads or 'ORT default'}")
    print(f"{'graph':8} {'variant':30} {'ms':>9} {'vs FP32':>8} {'SNR vs FP32 dB':>15}  ops ORT runs")
    for stage, (variants, feed) in stages.items():
        results = time_variants(variants, feed, repeats, threads)
        base_ms, base_out = results["FP32"]
        for name, (seconds, out) in results.items():
            ops = optimized_ops(variants[name], threads)
            conv = {k: v for k, v in ops.items() if "Conv" in k}
            snr = "" if name == "FP32" else f"{snr_db(base_out, out):15.2f}"
            print(f"{stage:8} {name:30} {seconds * 1e3:9.1f} {base_ms / seconds:7.2f}x {snr:>15}  "
                  f"{', '.join(f'{k} {v}' for k, v in sorted(conv.items()))}; Transpose {ops.get('Transpose', 0)}")


def quality_table(model: ModelDir, folder: Path, threads: int, quiet_dbfs: float | None, use_visqol: bool) -> None:
    rvq = NumpyRVQ(model.codebooks())
    pairs = {"FP32": (model.path_of("encoder"), model.path_of("decoder")),
             "CPU INT8": (model.path_of("encoder_cpu_int8"), model.path_of("decoder_cpu_int8"))}
    sessions = {name: (cpu_session(e, threads), cpu_session(d, threads)) for name, (e, d) in pairs.items()}
    fallback = None
    if quiet_dbfs is not None:   # INT8, but windows quieter than quiet_dbfs run the FP32 graphs
        fallback = (*sessions["FP32"], quiet_dbfs)
        sessions[f"INT8, FP32<{quiet_dbfs:g}dB"] = sessions["CPU INT8"]
    visqol = visqol_scorer() if use_visqol else None
    metrics = ["si_sdr", "mel"] + (["visqol"] if visqol else [])
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in sessions}
    names = []
    for path in list_audio_files(folder):
        reference, _ = read_audio(path)
        names.append(path.name)
        for name, (enc, dec) in sessions.items():
            out = codec_run(enc, dec, rvq, model.geometry, reference, fallback if "FP32<" in name else None)
            row = {"si_sdr": si_sdr(reference, out), "mel": mel_distance(reference, out)}
            if visqol:
                row["visqol"] = visqol(reference, out)
            rows[name].append(row)
    print(f"\nquality on {folder} ({len(names)} files); ViSQOL {'on' if visqol else 'not installed'}")
    print(f"{'file':40}" + "".join(f" {p + ' ' + m:>17}" for p in rows for m in metrics))
    for i, file in enumerate(names):
        print(f"{file[:40]:40}" + "".join(f" {rows[p][i][m]:17.3f}" for p in rows for m in metrics))
    means = {p: {m: float(np.mean([r[m] for r in rs])) for m in metrics} for p, rs in rows.items()}
    print(f"{'MEAN':40}" + "".join(f" {means[p][m]:17.3f}" for p in rows for m in metrics))
    for variant in [v for v in rows if v != "FP32"]:
        print(f"{variant} - FP32 (mean): " + ", ".join(f"{m} {means[variant][m] - means['FP32'][m]:+.3f}"
                                                      for m in metrics))
        deltas = [(rows[variant][i]["si_sdr"] - rows["FP32"][i]["si_sdr"], names[i]) for i in range(len(names))]
        worst = min(deltas)
        print(f"  worst per-file SI-SDR change: {worst[0]:+.3f} dB ({worst[1]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--calib", type=Path, default=None)
    parser.add_argument("--quality", type=Path, default=None)
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--method", default="minmax")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--quiet-fallback", type=float, default=None, metavar="DBFS",
                        help="add a quality variant: INT8, with windows quieter than DBFS on the FP32 graphs")
    parser.add_argument("--no-visqol", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="skip the per-graph speed table")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="apucodec-cpu-int8-"))
    try:
        model = load_model_dir(args.model)
        if not all(model.has(role) for role, _ in CPU_INT8_FILES.values()):
            if args.calib is None:
                sys.exit(f"error: {args.model}: no CPU INT8 graphs; pass --calib to make them")
            shutil.copytree(args.model, work / "model")
            result = quantize_cpu(work / "model", args.calib, windows=args.windows, method=args.method)
            print("\n".join(result.lines()))
            model = result.model
        if not args.no_speed:
            speed_table(model, args.calib, args.repeats, args.threads, work)
        if args.quality:
            quality_table(model, args.quality, args.threads, args.quiet_fallback, not args.no_visqol)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
