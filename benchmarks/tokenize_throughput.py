"""`apucodec tokenize` throughput: audio-hours per wall-hour on Ray Data at 1 and 2 encoder actors, against a plain
loop of `CodecEngine.encode_file` over the same files in one process, all measured side by side in one run.

The corpus is `--copies` copies of a folder of recordings (default /work/shared/audio/dev), each copy scaled by a
slightly different gain so its content hash differs (tokenize encodes identical content once). Every tokenize run
writes a fresh output folder, so nothing is skipped as already done. One local Ray is started for the whole
benchmark (its start-up time is printed separately); each tokenize row's wall time covers everything else a run
does: listing, hashing and probing, the Ray Data pipeline and its actors' start-up, writing shards.

    nice -n 10 python benchmarks/tokenize_throughput.py --copies 2
    python benchmarks/tokenize_throughput.py --model ./apucodec-model --workers 1 2 4 --threads 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.dataset.cluster import ray_session
from apucodec.dataset.tokenize_run import TokenizeOptions, tokenize
from apucodec.model.location import locate_model
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.stage_plan import SessionSettings


def make_corpus(source: Path, copies: int, folder: Path) -> tuple[list[Path], float]:
    files, seconds = [], 0.0
    for path in sorted(source.glob("*.wav")):
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        for copy in range(copies):
            target = folder / f"copy{copy}" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, np.clip(audio * (1.0 - 1e-3 * copy), -1, 1), rate, subtype="FLOAT")
            files.append(target)
            seconds += audio.shape[0] / rate
    return files, seconds


def loop_encode(model: Path, files: list[Path], out: Path, threads: int) -> float:
    """The baseline: one process, one CodecEngine, `encode_file` per file (what a shell loop of `apucodec encode` does,
    minus opening the sessions per file)."""
    codec = CodecEngine.open(model, SessionSettings(threads=threads), warn=None, stages=("encoder",))
    out.mkdir()
    start = time.perf_counter()
    for i, path in enumerate(files):
        codec.encode_file(path, out / f"{i}.apc")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/work/shared/audio/dev"))
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per actor")
    args = parser.parse_args()
    model = locate_model(args.model).path
    work = Path(tempfile.mkdtemp(prefix="tokbench"))
    try:
        files, seconds = make_corpus(args.source, args.copies, work / "corpus")
        print(f"corpus: {len(files)} files, {seconds / 60:.1f} min of audio ({args.copies} copies of {args.source}); "
              f"model {model}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
        rows = []
        start = time.perf_counter()
        with ray_session(None):
            print(f"local Ray start-up: {time.perf_counter() - start:.1f} s (not counted below)")
            # loops and tokenize runs alternate, so a load that drifts on a shared machine favours neither side
            loops = [args.threads, 0]
            for i, workers in enumerate(args.workers):
                if i < len(loops):
                    threads = loops[i]
                    wall = loop_encode(model, files, work / f"loop{i}", threads)
                    rows.append((f"loop of CodecEngine.encode_file, threads={threads or 'ORT default'}", wall))
                options = TokenizeOptions(model=model, workers=workers, threads=args.threads, shard_size=16)
                report = tokenize(work / "corpus", work / f"out{workers}", options)
                if report.encoded != len(files) or report.failed:
                    sys.exit(f"tokenize encoded {report.encoded} of {len(files)} files, {report.failed} failed")
                rows.append((f"tokenize --workers {workers} --threads {args.threads}", report.wall_seconds))
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        base = rows[0][1]  # the loop with as many threads as one actor
        print(f"{'run':<52} {'wall s':>8} {'audio-h/h':>10} {'vs loop':>8}")
        for name, wall in rows:
            print(f"{name:<52} {wall:>8.1f} {seconds / wall:>10.1f} {base / wall:>7.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
