"""The NPU presets on quiet audio: SI-SDR of a near-silent clip (and a normal one) per preset and calibration variant.

    python benchmarks/near_silent.py --model apucodec/models/default --calib ../shared/audio/train \
        --clips ../shared/audio/dev/edge_nearsilent_haunted_hum.wav ../shared/audio/dev/speech_x.wav \
        --presets xint8 a8w8 a16w8 --variants base= quiet=0,-20,-40 --windows 32

Each preset x variant quantizes its own copy of the model directory with `quantize_encoder` (same calibration
folder, seed and window count; a variant is `name=gains` with optional `:MinMSE-mode`, e.g. `fast=:MostCommon`,
gains in dB applied cyclically to the calibration windows) and then runs every clip through INT8 encoder -> RVQ ->
FP32 decoder with the runtime's windowing on the CPU EP. The FP32 row is the same path with the FP32 encoder.
Printed per row: quantization seconds, the held-out latent SNR and e2e SNR delta from the quantizer's own report,
and each clip's SI-SDR. Rows differ only by preset and variant.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from apucodec.audio import read_audio
from apucodec.calibration.quantize import quantize_encoder
from apucodec.metrics import si_sdr
from apucodec.model_dir import load_model_dir
from apucodec.runtime.rvq import NumpyRVQ

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph_runner import codec_run, cpu_session  # noqa: E402  (sibling benchmark module)


def parse_variant(text: str) -> tuple[str, list[float], str | None]:
    name, _, spec = text.partition("=")
    gains, _, mode = spec.partition(":")
    return name, [float(g) for g in gains.split(",") if g.strip()], mode or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--calib", required=True, type=Path)
    parser.add_argument("--clips", nargs="+", type=Path, required=True)
    parser.add_argument("--presets", nargs="+", default=["xint8", "a8w8", "a16w8"])
    parser.add_argument("--variants", nargs="+", default=["base=", "quiet=0,-20,-40"])
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)

    model = load_model_dir(args.model)
    rvq = NumpyRVQ(model.codebooks())
    clips = {path.name: read_audio(path)[0] for path in args.clips}
    decoder = cpu_session(model.path_of("decoder"), args.threads)

    def scores(encoder_path: Path) -> list[float]:
        encoder = cpu_session(encoder_path, args.threads)
        return [si_sdr(audio, codec_run(encoder, decoder, rvq, model.geometry, audio)) for audio in clips.values()]

    header = (f"{'preset':7} {'variant':24} {'quant s':>8} {'latent SNR':>11} {'e2e dSNR':>9}"
              + "".join(f" {name[:28]:>28}" for name in clips))
    lines = [header, f"{'FP32':7} {'':24} {'':>8} {'':>11} {'':>9}"
             + "".join(f" {s:28.2f}" for s in scores(model.path_of("encoder")))]
    print(lines[0] + "\n" + lines[1], flush=True)
    work = Path(tempfile.mkdtemp(prefix="apucodec-near-silent-"))
    try:
        for preset_name in args.presets:
            for variant in args.variants:
                name, gains, mode = parse_variant(variant)
                copy = work / f"{preset_name}-{name}"
                shutil.copytree(model.path, copy)
                result = quantize_encoder(copy, args.calib, preset_name=preset_name, windows=args.windows,
                                          seed=args.seed, threads=args.threads, level_gains_db=gains,
                                          minmse_mode=mode)
                label = f"{name} ({','.join(f'{g:g}' for g in gains) or 'as recorded'}{'; ' + mode if mode else ''})"
                line = (f"{preset_name:7} {label[:24]:24} {result.quantize_seconds:8.1f} "
                        f"{result.fidelity.latent_snr_db:11.2f} {result.fidelity.e2e_snr_delta_db:+9.2f}"
                        + "".join(f" {s:28.2f}" for s in scores(result.path)))
                print(line, flush=True)
                shutil.rmtree(copy, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"calibration: {args.calib}, {args.windows} windows, seed {args.seed}; SI-SDR in dB per clip "
          "(INT8 encoder -> NumPy RVQ -> FP32 decoder, CPU EP)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
