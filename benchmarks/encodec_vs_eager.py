"""EnCodec 24 kHz through apucodec vs Meta's `encodec` package (eager), on held-out real audio, side by side.

    python benchmarks/encodec_vs_eager.py --work /tmp/encodec-bench [--ref-python /work/refvenv/bin/python]
        [--audio-dir /work/shared/audio/dev] [--threads 2] [--stream-clips 3] [--no-int8]

1. the package (in its own interpreter, tests/reference/encodec_reference.py) builds
   `EncodecModel.encodec_model_24khz(pretrained=False)` with seeded random weights and random codebooks, saves its
   state dict, and writes its 6 kbps codes and its decode of them for every clip (each zero-padded to whole frames);
   it also times its eager encode + decode of the longest clip;
2. `apucodec export` of that state dict (step graphs 1, 2, 4, 64 frames + the 7-frame start graph), and, unless
   --no-int8, `apucodec quantize --target cpu` calibrated on --calib;
3. parity: codes at 6 kbps per codebook (apucodec runtime, FP32 vs the package); apucodec's decode of the package's
   codes vs the package's decode (SNR); streaming vs whole file at 1, 4 and 64-frame steps (the runtime against
   apucodec's torch model of the same weights, every sample);
4. speed: the longest clip through the package (eager, torch threads = --threads) vs apucodec FP32 and CPU INT8
   (offline 64-frame step, ORT threads = --threads), real-time factors and ratios; CPU INT8 codes/SNR vs FP32.
Everything is cached in --work (delete it to start over). Live latency: benchmarks/stream_latency.py --model
WORK/model --steps 1,2,4.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HOP, RATE = 320, 24000


def snr(ref: np.ndarray, est: np.ndarray) -> float:
    noise = float(np.sum((ref.astype(np.float64) - est) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)


def clips(audio_dir: Path, work: Path) -> list[Path]:
    from apucodec.io.audio_read import list_audio_files, read_audio

    out = []
    for i, path in enumerate(list_audio_files(audio_dir)):
        target = work / "clips" / f"{i:02d}_{path.stem}.npy"
        if not target.is_file():
            audio, _ = read_audio(path, RATE)
            padded = np.zeros(-(-audio.size // HOP) * HOP, dtype=np.float32)
            padded[: audio.size] = audio
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, padded)
        out.append(target)
    return out


def reference(ref_python: str, paths: list[Path], work: Path, threads: int) -> None:
    """The package's codes and decodes of every clip (cached: ref/ref.npz)."""
    if not (work / "ref" / "ref.npz").is_file():
        subprocess.run([ref_python, str(ROOT / "tests/reference/encodec_reference.py"), "--out", str(work / "ref"),
                        "--audio", *map(str, paths), "--bandwidth", "6", "--no-latent", "--threads", str(threads)],
                       check=True, capture_output=True, text=True)


def apucodec_cli(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "apucodec", *args], check=True, env=env)


def open_codec(model: Path, step: int, threads: int, precision: str = "fp32"):  # noqa: ANN201
    """A CodecEngine at `step` frames; precision "fp32" (both stages) or "auto" (CPU INT8 graphs where present)."""
    from apucodec.model.directory import load_model_dir
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings

    settings = SessionSettings(step_frames=step, threads=threads, encoder_graph=precision, decoder_graph=precision)
    return CodecEngine(load_model_dir(model), settings, None, ("encoder", "decoder"))


def stream_graph(path: Path, entry, audio: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """An encoder step graph streamed over `audio` on the ORT CPU EP (its step >= the start frames)."""
    import onnxruntime as ort

    from apucodec.runtime.onnx_step import onnx_step
    from apucodec.runtime.stepper import Stepper

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    latent = session.get_outputs()[0].shape[1]
    stepper = Stepper.for_stage(onnx_step(session), "encoder", hop=HOP, latent_dim=latent, delay_samples=0,
                                step_frames=entry.step_frames, state_size=entry.state_size,
                                horizon=entry.horizon_frames)
    return np.concatenate([stepper.push(audio[None]), stepper.finish()], axis=1)


def lstm_int8_cost(model_dir: Path, paths: list[Path], work: Path) -> None:
    """What INT8 LSTM weights would cost: the FP32 encoder with only its LSTMs weight-quantized (ORT's
    DynamicQuantizeLSTM, int8 weights) against the FP32 encoder: latent SNR and 6 kbps code agreement."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from apucodec.model.directory import load_model_dir
    from apucodec.runtime.rvq import NumpyRVQ

    model = load_model_dir(model_dir)
    entry = model.files["encoder.s64"]
    target = work / "encoder.s64.lstm-int8.onnx"
    if not target.is_file():
        quantize_dynamic(str(model_dir / "encoder.s64.onnx"), str(target), op_types_to_quantize=["LSTM"],
                         weight_type=QuantType.QInt8)
    rvq = NumpyRVQ(np.load(model_dir / "codebooks.npy"))
    snrs, agree = [], []
    for path in paths[:4]:
        audio = np.load(path)
        ref, got = (stream_graph(p, entry, audio) for p in (model_dir / "encoder.s64.onnx", target))
        snrs.append(snr(ref, got))
        agree.append((rvq.quantize(ref.T, 8) == rvq.quantize(got.T, 8)).mean(axis=1))
    per = " ".join(f"{100 * a:.1f}%" for a in np.mean(agree, axis=0))
    print(f"LSTM weights in INT8 (dynamic, everything else FP32), {len(snrs)} clips: latent SNR min "
          f"{min(snrs):.1f} dB; 6 kbps code agreement with FP32 per codebook {per}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--ref-python", default=os.environ.get("APUCODEC_TEST_REF_PYTHON", "/work/refvenv/bin/python"))
    parser.add_argument("--audio-dir", type=Path, default=Path("/work/shared/audio/dev"))
    parser.add_argument("--calib", type=Path, default=Path("/work/shared/audio/train"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stream-clips", type=int, default=3)
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--phases", default="parity,stream,speed,lstm",
                        help="which measurements to run (the export and quantization are cached in --work)")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    from apucodec.codec.checkpoint import load_encodec_checkpoint

    work = args.work
    paths = clips(args.audio_dir, work)
    reference(args.ref_python, paths, work, args.threads)
    model_dir = work / "model"
    if not (model_dir / "manifest.json").is_file():
        apucodec_cli("export", "--checkpoint", str(work / "ref/encodec.th"), "--out", str(model_dir),
                     "--step-frames", "1,2,4,64", "-q")
    if not args.no_int8 and not (model_dir / "encoder.s64.cpu-int8.onnx").is_file():
        apucodec_cli("quantize", "--target", "cpu", "--model", str(model_dir), "--calib", str(args.calib))
    ref = np.load(work / "ref/ref.npz")
    net = load_encodec_checkpoint(work / "ref/encodec.th")

    if "parity" in phases:
        parity(model_dir, paths, ref, args)
    if "stream" in phases:
        streaming(model_dir, paths, net, args)
    if "speed" in phases:
        speed(model_dir, paths, args)
    if "lstm" in phases and not args.no_int8:
        lstm_int8_cost(model_dir, paths, work)


def parity(model_dir: Path, paths: list[Path], ref, args) -> None:  # noqa: ANN001
    """Codes at 6 kbps per codebook, and apucodec's decode of the package's codes, against the package."""
    codec = open_codec(model_dir, 64, args.threads)
    equal, total, decode_snr = np.zeros(8), 0, []
    for i, path in enumerate(paths):
        audio = np.load(path)
        codes, _ = codec.encode_array(audio, 8)
        want = ref[f"codes_{i}"]
        equal += (codes == want).sum(axis=1)
        total += want.shape[1]
        decoded, _ = codec.decode_codes(want, audio.size)
        decode_snr.append(snr(ref[f"audio_{i}"][: audio.size], np.asarray(decoded).reshape(-1)))
    print(f"clips: {len(paths)} held-out files from {args.audio_dir}, {total} frames "
          f"({total * HOP / RATE:.1f} s), each zero-padded to whole frames")
    print("codes at 6 kbps equal to the package's, per codebook: "
          + " ".join(f"{100 * e / total:.2f}%" for e in equal))
    print(f"decode of the package's codes vs the package's decode: SNR min {min(decode_snr):.1f} dB, "
          f"median {np.median(decode_snr):.1f} dB")


def streaming(model_dir: Path, paths: list[Path], net, args) -> None:  # noqa: ANN001
    """The runtime at 1, 4 and 64-frame steps against apucodec's whole-file torch model, every sample."""
    import torch

    for step in (1, 4, 64):
        stream = open_codec(model_dir, step, args.threads)
        worst_err, worst_snr, codes_same = 0.0, float("inf"), True
        for path in paths[: args.stream_clips]:
            audio = np.load(path)
            with torch.no_grad():
                want_codes = net.encode(torch.from_numpy(audio).view(1, 1, -1), 8)[0].numpy()
                want = net.decode(torch.from_numpy(want_codes)[None])[0, 0].numpy()
            got_codes, _ = stream.encode_array(audio, 8)
            got, _ = stream.run_array(audio, 8)
            got = np.asarray(got).reshape(-1)
            codes_same &= bool(np.array_equal(got_codes, want_codes))
            worst_err = max(worst_err, float(np.abs(got - want).max()))
            worst_snr = min(worst_snr, snr(want, got))
        print(f"streaming at {step}-frame steps vs whole-file torch ({args.stream_clips} clips): codes identical "
              f"{codes_same}, output max abs error {worst_err:.2e}, SNR {worst_snr:.1f} dB")


def speed(model_dir: Path, paths: list[Path], args) -> None:  # noqa: ANN001
    """The longest clip, encode + decode at 6 kbps: the package eager vs apucodec FP32 and CPU INT8."""
    longest = max(paths, key=lambda p: np.load(p).size)
    audio = np.load(longest)
    seconds = audio.size / RATE
    # Timed again here, right before apucodec, so both run under the same machine load.
    out = subprocess.run([args.ref_python, str(ROOT / "tests/reference/encodec_reference.py"), "--out",
                          str(args.work / "ref"), "--audio", str(longest), "--time-only",
                          str(args.work / "ref/encodec.th"), "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    eager = json.loads(out.strip().splitlines()[-1])
    rows = [("encodec eager (package)", eager["encode_s"] + eager["decode_s"])]
    variants = [("apucodec FP32", "fp32")] + ([] if args.no_int8 else [("apucodec CPU INT8", "auto")])
    outputs = {}
    for label, precision in variants:
        c = open_codec(model_dir, 64, args.threads, precision)
        c.run_array(audio[:RATE], 8)  # warm-up
        started = time.perf_counter()
        out, _ = c.run_array(audio, 8)
        rows.append((label, time.perf_counter() - started))
        outputs[label] = (np.asarray(out).reshape(-1), c.encode_array(audio, 8)[0])
    print(f"speed on {longest.name} ({seconds:.1f} s, {args.threads} threads, encode + decode at 6 kbps):")
    base = rows[0][1]
    for label, wall in rows:
        print(f"  {label:28s} {wall:6.2f} s  RTF {wall / seconds:.3f}  ({base / wall:.2f}x the package's speed)")
    if "apucodec CPU INT8" in outputs:
        fp, q = outputs["apucodec FP32"], outputs["apucodec CPU INT8"]
        agree = " ".join(f"{100 * a:.1f}%" for a in (fp[1] == q[1]).mean(axis=1))
        print(f"CPU INT8 (LSTMs kept in float) vs FP32: output SNR {snr(fp[0], q[0]):.1f} dB; code agreement per "
              f"codebook {agree}")


if __name__ == "__main__":
    main()
