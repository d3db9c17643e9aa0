"""A seed (GroupNorm) checkpoint's exported model, run offline, against the checkpoint's own whole-file PyTorch.

    python benchmarks/seed_offline_parity.py --checkpoint seed.pt --model MODEL_DIR CLIP.wav

Runs `apucodec run` (the CLI, FP32 graphs; WAV output, 16-bit as it writes it) and `apucodec encode` ->
`apucodec decode` on the clip, on the CPU EP, and compares with PyTorch's whole-file forward of the same checkpoint
(the clip zero-padded to whole frames, output trimmed): output SNR, and the share of codes equal to PyTorch's codes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("clip")
    args = parser.parse_args()

    import numpy as np
    import soundfile as sf
    import torch

    from apucodec.codec.checkpoint import load_checkpoint
    from apucodec.dsp.metrics import snr_db
    from apucodec.io.apc_reader import open_apc
    from apucodec.io.audio_read import read_audio

    audio, _ = read_audio(args.clip, 44100)
    model = load_checkpoint(args.checkpoint).model
    hop = model.config.hop_length
    padded = np.zeros(-(-audio.size // hop) * hop, np.float32)
    padded[: audio.size] = audio
    with torch.no_grad():
        codes_ref = model.encode(torch.from_numpy(padded)[None, None])
        ref = model.decode(codes_ref)[0, 0, : audio.size].numpy()
    codes_ref = codes_ref[0].numpy()
    cpu = ["--encoder-ep", "cpu", "--decoder-ep", "cpu", "--precision", "fp32", "--model", args.model]
    with tempfile.TemporaryDirectory() as tmp:
        out, apc, dec = Path(tmp) / "run.wav", Path(tmp) / "x.apc", Path(tmp) / "dec.wav"
        cli = [sys.executable, "-m", "apucodec"]
        subprocess.run([*cli, "run", args.clip, str(out), *cpu], check=True)
        subprocess.run([*cli, "encode", args.clip, str(apc), *cpu], check=True)
        subprocess.run([*cli, "decode", str(apc), str(dec), *cpu], check=True)
        run_out, _ = sf.read(out, dtype="float32")
        dec_out, _ = sf.read(dec, dtype="float32")
        info = sf.info(out)
        with open_apc(apc) as reader:
            codes = np.concatenate(list(reader.chunks(256)), axis=1)
    print(f"{args.checkpoint} ({model.param_count / 1e6:.1f}M, norm={model.config.norm}) on {args.clip} "
          f"({audio.size / 44100:.1f} s); output files {info.subtype}")
    print(f"apucodec run             vs PyTorch whole-file: SNR {snr_db(ref, run_out):.1f} dB")
    print(f"apucodec encode -> decode vs PyTorch whole-file: SNR {snr_db(ref, dec_out):.1f} dB; codes equal "
          f"{np.mean(codes == codes_ref) * 100:.2f} % ({codes.shape[0]} x {codes.shape[1]})")
    print(f"run vs encode -> decode: {'identical' if np.array_equal(run_out, dec_out) else 'differ'}")


if __name__ == "__main__":
    main()
