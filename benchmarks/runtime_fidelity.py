"""How closely the step-graph ONNX runtime reproduces the whole-file PyTorch codec, and the .apc bitrate.

    python benchmarks/runtime_fidelity.py --checkpoint ckpt.pt --model apucodec-model --seconds 10 [--step-frames 4]

Prints, for one generated clip (needs torch: the reference is the PyTorch codec with the same weights):
  * encoder: the FP32 encoder step graph streamed over the clip vs the whole-file torch encoder, max abs error of
    the latent over every frame, and over the EDGE frames at each end alone
  * rvq: share of codes equal to the torch quantizer's on those latents (ties can flip a code)
  * decoder: `run`'s output vs the whole-file torch decoder on the same codes, max abs error (all samples, edges)
  * end to end: `run` vs the whole-file torch codec, max abs error (including any tie-flipped codes)
  * encode -> decode vs run: identical samples and identical WAV files, or not
  * .apc size: payload and whole-file bitrate vs the codec's nominal bitrate (7.58 kbps for 8 x 2048)
The step graphs zero what lies outside the signal exactly as the whole-file convolutions' padding does, so the
edges should be as close as the middle: they are reported apart because that is where static windows used to fail.
"""

from __future__ import annotations

import argparse
import filecmp
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_run import write_clip  # noqa: E402

EDGE_FRAMES = 16  # frames at each end reported apart (where static windows used to differ from whole-file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--step-frames", type=int, default=0, help="step graphs to run (0: the model's largest)")
    args = parser.parse_args()

    import torch

    from apucodec.codec.checkpoint import load_checkpoint
    from apucodec.io.apc_header import HEADER_SIZE
    from apucodec.io.apc_reader import read_apc
    from apucodec.runtime.codec_runner import CodecEngine
    from apucodec.runtime.stage_plan import SessionSettings

    torch_model = load_checkpoint(args.checkpoint).model.eval()
    settings = SessionSettings(encoder_eps=("cpu",), decoder_eps=("cpu",), threads=args.threads)
    codec = CodecEngine.open(args.model, settings, warn=None, step_frames=args.step_frames or None)
    hop, step = codec.hop, codec.step_frames("encoder")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        write_clip(clip, args.seconds)
        audio, _ = sf.read(clip, dtype="float32")

        out, result = codec.run_array(audio)
        codes, _ = codec.encode_array(audio)
        frames = codes.shape[1]
        padded = np.zeros(frames * hop, dtype=np.float32)
        padded[: audio.size] = audio
        with torch.no_grad():
            latent_ref = torch_model.encoder(torch.from_numpy(padded)[None, None])
            codes_ref = torch_model.quantizer.quantize_codes(latent_ref)[0].numpy()
            whole = torch_model.decoder(torch_model.quantizer.dequantize(torch.from_numpy(codes_ref)[None]))
            same_codes = torch_model.decoder(torch_model.quantizer.dequantize(
                torch.from_numpy(codes.astype(np.int64))[None]))
        whole = whole[0, 0, : audio.size].numpy()
        same_codes = same_codes[0, 0, : audio.size].numpy()
        encoder = codec.stepper("encoder")
        rows = np.concatenate([encoder.push(audio[None]), encoder.finish()], axis=1).T
        latent_ref = latent_ref[0].numpy().T

        edge = min(EDGE_FRAMES, frames // 2)
        fe = np.r_[:edge, frames - edge:frames]
        se = np.r_[:edge * hop, max(0, audio.size - edge * hop):audio.size]
        print(f"clip {args.seconds:g} s, {frames} frames; step graphs of {step} frames, {result.steps_of('encoder')} "
              f"encoder + {result.steps_of('decoder')} decoder steps; edges = {edge} frames at each end")
        scale = np.abs(latent_ref).max()
        print(f"encoder latent max abs error: {np.abs(rows - latent_ref).max():.3e} (edges "
              f"{np.abs(rows[fe] - latent_ref[fe]).max():.3e}; latent max {scale:.3f})")
        print(f"rvq codes equal to torch's: {(codes == codes_ref).mean() * 100:.3f} % (edges "
              f"{(codes[:, fe] == codes_ref[:, fe]).mean() * 100:.3f} %)")
        print(f"decoder (same codes) max abs error: {np.abs(out - same_codes).max():.3e} (edges "
              f"{np.abs(out[se] - same_codes[se]).max():.3e}; output peak {np.abs(same_codes).max():.3f})")
        print(f"end to end vs whole-file torch codec, max abs error: {np.abs(out - whole).max():.3e} (edges "
              f"{np.abs(out[se] - whole[se]).max():.3e})")

        decoded, _ = codec.decode_codes(codes, audio.size)
        apc, run_wav, dec_wav = Path(tmp) / "x.apc", Path(tmp) / "run.wav", Path(tmp) / "dec.wav"
        codec.run_file(clip, run_wav)
        codec.encode_file(clip, apc)
        codec.decode_file(apc, dec_wav)
        print(f"encode -> decode == run: samples {'identical' if np.array_equal(decoded, out) else 'DIFFER'}, "
              f"WAV files {'identical' if filecmp.cmp(run_wav, dec_wav, shallow=False) else 'DIFFER'}")
        header, _ = read_apc(apc)
        size = apc.stat().st_size
        payload_bits = (size - HEADER_SIZE - 4) * 8
        nominal = codec.config.bitrate(header.n_codebooks)
        expected_bytes = HEADER_SIZE + math.ceil(header.frames * header.n_codebooks * header.bits_per_code / 8) + 4
        print(f".apc: {size} bytes (expected {expected_bytes}); payload {payload_bits / args.seconds / 1000:.3f} kbps, "
              f"whole file {size * 8 / args.seconds / 1000:.3f} kbps; nominal {nominal / 1000:.3f} kbps "
              f"({header.n_codebooks} x {header.codebook_size} codes, {header.bits_per_code} bits, "
              f"{codec.config.frame_rate:.2f} frames/s)")


if __name__ == "__main__":
    main()
