"""A pooled-norm (seed, GroupNorm) model streamed through step networks: per-step pooling (the old step graphs) vs
running statistics carried in the state (the current ones), each against the checkpoint's whole-file forward.

    python benchmarks/seed_streaming.py CHECKPOINT AUDIO [AUDIO ...] [--steps 4,64] [--seconds 10]

Runs the step networks in PyTorch through the runtime's own Stepper (buffering, state, bounds, delay, flush), so
the numbers are what the exported step graphs compute, without an ONNX export per mode. Prints the SNR of the
encoder's latent and of the decoder's audio (fed the whole-file quantized latent), pooled over the clips.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("audio", nargs="+")
    parser.add_argument("--steps", default="4,64")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    import numpy as np
    import torch

    from apucodec.codec.checkpoint import load_checkpoint
    from apucodec.dsp.metrics import snr_db
    from apucodec.export.folding import fold_weight_norm
    from apucodec.export.streaming import build_steps
    from apucodec.io.audio_read import read_audio
    from apucodec.runtime.stepper import Stepper

    model = load_checkpoint(args.checkpoint).model
    cfg, hop = model.config, model.config.hop_length
    folded = {stage: fold_weight_norm(getattr(model, stage), cfg)[0] for stage in ("encoder", "decoder")}
    clips = [read_audio(p, cfg.sample_rate)[0][: int(args.seconds * cfg.sample_rate)] for p in args.audio]
    refs = []
    with torch.no_grad():
        for clip in clips:
            frames = -(-clip.size // hop)
            audio = np.zeros((1, 1, frames * hop), np.float32)
            audio[0, 0, : clip.size] = clip
            latent = model.encoder(torch.from_numpy(audio))
            quantized = model.quantizer.dequantize(model.quantizer.quantize_codes(latent))
            refs.append((audio, frames, latent.numpy()[0], quantized.numpy()[0], model.decoder(quantized).numpy()[0]))
    print(f"{args.checkpoint}: {sum(c.size for c in clips) / cfg.sample_rate:.1f} s of audio from {len(clips)} clips")
    print(f"{'step':>5} {'norm statistics':>16} {'encoder SNR dB':>15} {'decoder SNR dB':>15}")
    for step in (int(s) for s in args.steps.split(",")):
        for mode in ("per-step", "running"):
            found = {}
            for stage in ("encoder", "decoder"):
                net = build_steps(folded[stage], step, hop, mode)

                def call(x, state, bounds, net=net):
                    with torch.no_grad():
                        y, nxt = net(torch.from_numpy(x), torch.from_numpy(state), torch.from_numpy(bounds))
                    return y.numpy(), nxt.numpy()

                got, want = [], []
                for audio, frames, latent, quantized, decoded in refs:
                    s = Stepper.for_stage(call, stage, hop=hop, latent_dim=cfg.latent_dim,
                                          delay_samples=net.delay_samples, step_frames=step,
                                          state_size=net.state_size, horizon=net.horizon_frames)
                    if stage == "encoder":
                        out = np.concatenate([s.push(audio[0]), s.finish(frames)], axis=1)
                        want.append(latent.reshape(-1))
                    else:
                        out = np.concatenate([s.push(quantized), s.finish(frames)], axis=1)
                        want.append(decoded.reshape(-1))
                    got.append(out.reshape(-1))
                found[stage] = snr_db(np.concatenate(want), np.concatenate(got))
            print(f"{step:5d} {mode:>16} {found['encoder']:15.2f} {found['decoder']:15.2f}")


if __name__ == "__main__":
    main()
