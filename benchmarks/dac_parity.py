"""DAC parity on real audio: `apucodec encode --precision fp32` codes vs descript-audio-codec's own codes, decode SNR
vs its decode, and (with a CPU INT8 model) INT8 vs FP32 code agreement and output SNR.

    python benchmarks/dac_parity.py --model DIR --ref REF.npz CLIP.wav [CLIP.wav ...] [--int8]

REF.npz is what tests/reference/dac_reference.py wrote for the same clips (as .npy, in this order) with the
weights DIR was exported from. Codes come from the CLI (`encode` to .apc, read back); decoding uses the runtime's
float output (no 16-bit WAV rounding in the SNR). Where codes differ, the DAC-side cosine gap between the two
candidates at the first differing codebook is printed: a tie within float32 rounding, or a real disagreement.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from apucodec.dsp.metrics import snr_db
from apucodec.io.apc_reader import parse_apc
from apucodec.runtime.codec_runner import CodecEngine
from apucodec.runtime.stage_plan import SessionSettings


def cli_codes(model: Path, clip: Path, precision: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "x.apc"
        subprocess.run([sys.executable, "-m", "apucodec", "encode", str(clip), str(out), "--model", str(model),
                        "--precision", precision], check=True, capture_output=True, env=dict(os.environ))
        return parse_apc(out.read_bytes())[1]


def tie_gaps(codec: CodecEngine, audio: np.ndarray, ours: np.ndarray, theirs: np.ndarray) -> list[str]:
    """For each differing frame: at the first differing level, the cosine of each side's pick (our residual)."""
    rvq = codec.rvq
    stepper = codec.stepper("encoder")
    latent = np.concatenate([stepper.push(audio[None]), stepper.finish()], axis=1).T  # [F, D]
    lines = []
    for frame in np.flatnonzero((ours != theirs).any(axis=0))[:10]:
        level = int(np.flatnonzero(ours[:, frame] != theirs[:, frame])[0])
        residual = latent[frame: frame + 1] - (rvq.dequantize(ours[:level, frame: frame + 1]) if level else 0)
        z_e = residual @ rvq._in_wt[level] + rvq._in_b[level]
        z_e = z_e[0] / np.linalg.norm(z_e)
        book = rvq.codebooks[level] / np.linalg.norm(rvq.codebooks[level], axis=1, keepdims=True)
        a, b = float(z_e @ book[ours[level, frame]]), float(z_e @ book[theirs[level, frame]])
        lines.append(f"    frame {frame} codebook {level}: ours {ours[level, frame]} cos {a:.8f}, DAC's "
                     f"{theirs[level, frame]} cos {b:.8f} (gap {a - b:.2e})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--ref", type=Path, required=True)
    parser.add_argument("--int8", action="store_true", help="also compare the CPU INT8 path with FP32")
    parser.add_argument("clips", type=Path, nargs="+")
    args = parser.parse_args()
    ref = np.load(args.ref)
    cpu = dict(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=2, int8_floor_dbfs=float("-inf"))
    fp32 = CodecEngine.open(args.model, SessionSettings(encoder_graph="fp32", decoder_graph="fp32", **cpu), warn=None)
    int8 = CodecEngine.open(args.model, SessionSettings(**cpu), warn=None) if args.int8 else None
    totals, frames = 0, 0
    for i, clip in enumerate(args.clips):
        audio = sf.read(clip, dtype="float32")[0]
        theirs = ref[f"codes_{i}"]
        ours = cli_codes(args.model, clip, "fp32")
        agree = (ours == theirs).mean(axis=1)
        totals, frames = totals + (ours == theirs).sum(axis=1), frames + ours.shape[1]
        decoded, _ = fp32.decode_codes(theirs, audio.size)
        dac_audio = ref[f"audio_{i}"]
        n = min(audio.size, dac_audio.size)
        snr = snr_db(dac_audio[:n], decoded[:n])
        print(f"{clip.name}: {ours.shape[1]} frames; code agreement per codebook "
              + " ".join(f"{a:.2%}" for a in agree) + f"; decode SNR vs DAC {snr:.1f} dB")
        for line in tie_gaps(fp32, audio, ours, theirs):
            print(line)
        streamed, _ = fp32.run_array(audio)
        whole, _ = fp32.decode_codes(fp32.encode_array(audio)[0], audio.size)
        print(f"  run == encode -> decode: max abs diff {np.max(np.abs(streamed - whole)):.1e}")
        if int8 is not None:
            codes8 = cli_codes(args.model, clip, "auto")  # auto: the CPU INT8 graphs on the CPU EP
            out8, _ = int8.run_array(audio)
            print("  CPU INT8 vs FP32: code agreement " + " ".join(f"{a:.2%}" for a in (codes8 == ours).mean(axis=1))
                  + f"; output SNR {snr_db(streamed, out8):.1f} dB")
    print("all clips: code agreement per codebook " + " ".join(f"{t / frames:.3%}" for t in totals))


if __name__ == "__main__":
    main()
