"""Reference run of Meta's `encodec` package, for parity tests. Run ONLY with the reference interpreter
(APUCODEC_TEST_REF_PYTHON, e.g. /work/refvenv/bin/python): it imports `encodec`, which apucodec never does.

Builds `EncodecModel.encodec_model_24khz(pretrained=False)` (or, with --small, an EnCodec-shaped model small enough
for a unit test), seeds its weights, gives every codebook random values (untrained EnCodec codebooks are zeros until
k-means runs on the first batch, which would make every code 0), and writes:
  <out>/encodec.th   the bare state dict, as the pretrained file ships
  <out>/ref.npz      per --audio file i (float32 [n], 24 kHz mono, whole frames): codes_i [n_q, frames] at
                     --bandwidth kbps, audio_i the package's decode of those codes, latent_i the unquantized latent
With --time, encode and decode of the longest file are timed (eager, --threads torch threads) and printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from encodec import EncodecModel
from encodec import modules as m
from encodec import quantization as qt


def small_model() -> EncodecModel:
    """EnCodec's architecture at toy width: the 24 kHz ratios (hop 320), 2-layer LSTMs, 8 x 1024 RVQ over 16 dims."""
    kwargs = dict(channels=1, dimension=16, n_filters=2, ratios=[8, 5, 4, 2], norm="weight_norm", causal=True)
    encoder, decoder = m.SEANetEncoder(**kwargs), m.SEANetDecoder(**kwargs)
    quantizer = qt.ResidualVectorQuantizer(dimension=16, n_q=8, bins=1024)
    return EncodecModel(encoder, decoder, quantizer, [1.5, 3.0, 6.0, 12.0, 24.0], 24000, 1, name="small")


def randomize(model: EncodecModel, audio: torch.Tensor, seed: int) -> None:
    """Seeded weights (torch's default init) and random codebooks: each level's 1024 entries are residual vectors of
    `audio` drawn at random (as EnCodec's own k-means starts) plus Gaussian noise of the residual's per-channel
    spread, so the codes spread over the codebook (random-weight latents sit at a per-channel offset with little
    variation: codebooks drawn around zero would pick one or two codewords)."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        # Weights at unit gain (v ~ N(0, 1/fan_in), g = ||v||, small biases): torch's default init shrinks the signal
        # through the 15 layers to a latent that barely moves around per-channel offsets, where float rounding
        # alone decides between near-equidistant codewords; at unit gain the latent varies ~300x more.
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) and hasattr(module, "weight_v"):
                v = module.weight_v
                fan_in = (v.shape[1] * v.shape[2] if isinstance(module, torch.nn.Conv1d)
                          else v.shape[0] * v.shape[2] / module.stride[0])
                v.normal_(0.0, fan_in ** -0.5, generator=generator)
                module.weight_g.copy_(v.reshape(v.shape[0], -1).norm(dim=1).reshape(module.weight_g.shape))
                module.bias.uniform_(-0.01, 0.01, generator=generator)
        latent = model.encoder(audio).transpose(1, 2).reshape(-1, model.quantizer.dimension)
        residual = latent.clone()
        for layer in model.quantizer.vq.layers:
            book = layer._codebook
            picks = torch.randint(0, residual.shape[0], (book.embed.shape[0],), generator=generator)
            noise = torch.randn(book.embed.shape, generator=generator) * residual.std(0).clamp_min(1e-8)
            embed = residual[picks] + 0.5 * noise
            book.embed.copy_(embed)
            book.embed_avg.copy_(embed)
            book.cluster_size.fill_(1.0)
            book.inited.fill_(1.0)
            idx = layer.encode(residual.T[None])[0]
            residual = residual - embed[idx]


@torch.no_grad()
def time_codec(model: EncodecModel, audio: torch.Tensor) -> dict:
    """Eager encode and decode of `audio`, after a one-second warm-up."""
    model.decode(model.encode(audio[..., :24000]))
    started = time.perf_counter()
    frames = model.encode(audio)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    model.decode(frames)
    decode_s = time.perf_counter() - started
    return {"seconds": audio.shape[-1] / 24000, "encode_s": encode_s, "decode_s": decode_s,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--audio", type=Path, nargs="+", required=True,
                        help=".npy float32 [n] at 24 kHz (whole frames), one or more")
    parser.add_argument("--bandwidth", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--n-q", type=int, default=None, help="codebooks to use instead of --bandwidth's")
    parser.add_argument("--time", action="store_true", help="also time encode and decode (eager, this process)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-latent", action="store_true", help="do not store the unquantized latents")
    parser.add_argument("--time-only", type=Path, default=None, metavar="STATE",
                        help="load this state dict and only time encode + decode of the first --audio file")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = small_model() if args.small else EncodecModel.encodec_model_24khz(pretrained=False)
    model.eval()
    if args.time_only is not None:
        model.load_state_dict(torch.load(args.time_only, map_location="cpu", weights_only=True))
        model.set_target_bandwidth(args.bandwidth)
        print(json.dumps(time_codec(model, torch.from_numpy(np.load(args.audio[0])).view(1, 1, -1))))
        return
    clips = [torch.from_numpy(np.load(path).astype(np.float32)).view(1, 1, -1) for path in args.audio]
    randomize(model, torch.cat(clips[:3], dim=-1), args.seed)
    model.set_target_bandwidth(args.bandwidth)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "encodec.th")
    found: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for i, audio in enumerate(clips):
            frames = model.encode(audio)
            if args.n_q is not None:
                frames = [(model.quantizer.vq.encode(model.encoder(audio), n_q=args.n_q).transpose(0, 1), None)]
            found[f"codes_{i}"] = frames[0][0][0].numpy().astype(np.int64)
            found[f"audio_{i}"] = model.decode(frames)[0, 0].numpy()
            if not args.no_latent:
                found[f"latent_{i}"] = model.encoder(audio)[0].numpy()
        np.savez(args.out / "ref.npz", **found)
        if args.time:
            print(json.dumps(time_codec(model, max(clips, key=lambda c: c.shape[-1]))))


if __name__ == "__main__":
    main()
