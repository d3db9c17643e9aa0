"""Quantize one model directory with every INT8 preset and tabulate fidelity, quantization time and CPU speed.

Each preset works on its own copy of the model directory (under --out, default a temp folder), calibrated on the
same folder with the same seed, so the rows differ only by preset. The speed columns time the FP32 and INT8
encoder step graphs on the CPU EP, streamed over the given input lengths (see benchmarks/encoder_int8.py).

    python benchmarks/quantize_presets.py --model ./apucodec-model --calib ../shared/audio/dev
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from apucodec.calibration.quantize import quantize_encoder
from apucodec.dsp.signals import mixture

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_int8 import offline_roles, open_session, time_graphs  # noqa: E402  (sibling benchmark script)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--calib", required=True)
    parser.add_argument("--presets", nargs="+", default=["xint8", "a8w8", "a16w8"])
    parser.add_argument("--steps", type=int, default=64, help="calibration steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--conv2d", action="store_true")
    parser.add_argument("--out", default=None, help="keep the quantized copies here (default: a temp folder)")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="apucodec-presets-"))
    rows = []
    for name in args.presets:
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(args.model, target)
        result = quantize_encoder(target, args.calib, preset_name=name, steps=args.steps, seed=args.seed,
                                  conv2d=args.conv2d, threads=args.threads)
        model = result.model
        fp32_role, _ = offline_roles(model)
        sessions = {"fp32": open_session(model.path_of(fp32_role), [], args.threads, "all"),
                    "int8": open_session(result.path, result.custom_op_domains, args.threads, "all")}
        speed = []
        for seconds in args.seconds:
            audio = mixture(int(seconds * model.config.sample_rate), model.config.sample_rate).astype(np.float32)
            runs, _steps = time_graphs(model, fp32_role, sessions, audio, args.repeats)
            speed.append((seconds, statistics.median(runs["fp32"]), statistics.median(runs["int8"])))
        f = result.fidelity
        rows.append((name, f.latent_snr_db, f.code_agreement[0], f.code_agreement[-1], f.e2e_snr_fp32_db,
                     f.e2e_snr_delta_db, result.quantize_seconds, speed, result.calibration_steps, f.steps))
        print(f"{name}: done ({target})", file=sys.stderr)

    print(f"model {args.model}; calibration {args.calib}, seed {args.seed}; CPU EP, {args.threads} thread(s)")
    header = (f"{'preset':>6} {'latent SNR':>10} {'cb1':>6} {'cb_last':>7} {'e2e FP32':>8} {'e2e delta':>9} "
              f"{'quant s':>7} {'steps c/e':>10}")
    for seconds in args.seconds:
        header += f" {f'{seconds:g}s fp32/int8 ms':>20}"
    print(header)
    for name, snr, cb1, cbn, e2e, delta, qsec, speed, n_cal, n_eval in rows:
        line = (f"{name:>6} {snr:9.2f}dB {cb1:6.1%} {cbn:7.1%} {e2e:7.2f}dB {delta:+8.2f}dB {qsec:7.1f} "
                f"{f'{n_cal}/{n_eval}':>10}")
        for _seconds, fp32, int8 in speed:
            line += f" {f'{fp32 * 1e3:.0f}/{int8 * 1e3:.0f}':>20}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
