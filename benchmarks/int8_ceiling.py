"""How far can static INT8 take the encoder's codes? Fake-quantized variants of a checkpoint's encoder, in PyTorch.

    python benchmarks/int8_ceiling.py --checkpoint CKPT.pt [--dev DEV_WAVS] [--calib TRAIN_AUDIO] [--percentile 99.99]

Why: `apucodec quantize --target cpu` can only write what ONNX Runtime's CPU kernels run fast (uint8 activations per
tensor, int8 weights per channel, QLinearConv). Whether a goal such as ">= 95% of first-codebook codes equal to
FP32" is reachable at all is a property of the network and of 8-bit activations, not of the quantizer's details.
This script answers it without writing a graph: it rounds chosen tensors of the PyTorch encoder to a uint8 grid
(ranges at an exact tail percentile of calibration audio, as `--method tail`), the weights to int8 per output
channel, and counts equal codes against the float encoder on held-out audio, per codebook. Variants:
- every tensor the wider ORT op set quantized (convolutions, activations, residual sums);
- convolutions only, inputs and outputs: what ORT fuses into QLinearConv (`apucodec quantize` since this change);
- convolution inputs only (an output kept float needs ConvInteger, which ORT's CPU EP runs slower than FP32);
  also at 9-11 bits, to show how many bits the goal needs;
- the weights alone; one encoder block quantized with every other layer float.
The encoder's first and last convolutions stay float, as in the CPU INT8 graphs. Like the runtime's INT8 floor
(runtime/int8_floor.py), frames of 128-frame steps quieter than --floor dBFS take the float codes.
An APUCodec-family checkpoint only (the layer names are its own).
"""

from __future__ import annotations

import argparse
import glob
import math
from pathlib import Path

import numpy as np
import torch

from apucodec.codec.checkpoint import load_checkpoint
from apucodec.codec.modules import ResidualUnit
from apucodec.io.audio_read import read_audio

RATE, HOP, STEP = 44100, 512, 128
FLOAT_CONVS = ("input_conv", "output_conv")


def fake_quant(x: torch.Tensor, low: float, high: float, bits: int) -> torch.Tensor:
    """x on an asymmetric grid of 2**bits levels spanning [low, high] (widened to hold 0, as ORT does)."""
    low, high, top = min(low, 0.0), max(high, 0.0), 2 ** bits - 1
    scale = (high - low) / top
    zero = round(-low / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, top) - zero) * scale


class FakeQuantEncoder:
    """Hooks on an encoder that round its activations (at `points`) and weights (convs not in `float_convs`)."""

    def __init__(self, encoder: torch.nn.Module, points: tuple[str, ...], bits: int, percentile: float,
                 float_convs: set[str]) -> None:
        self.encoder, self.bits, self.percentile = encoder, bits, percentile
        self.ranges: dict[str, tuple[float, float]] = {}
        self.samples: dict[str, list[np.ndarray]] | None = None
        self.hooks = []
        self.weights = {}
        for name, module in encoder.named_modules():
            quantized_conv = isinstance(module, torch.nn.Conv1d) and name not in float_convs
            if quantized_conv:
                self.weights[name] = module.weight.data.clone()
                scale = module.weight.data.abs().amax(dim=(1, 2), keepdim=True) / 127
                module.weight.data = torch.round(module.weight.data / scale).clamp(-127, 127) * scale
                if "in" in points:
                    self.hooks.append(module.register_forward_pre_hook(
                        lambda _m, args, key=f"{name}:in": (self._tap(key, args[0]),)))
                if "out" in points:
                    self.hooks.append(module.register_forward_hook(
                        lambda _m, _a, out, key=f"{name}:out": self._tap(key, out)))
            elif ("act" in points and isinstance(module, torch.nn.LeakyReLU)) or \
                    ("add" in points and isinstance(module, ResidualUnit)):
                self.hooks.append(module.register_forward_hook(lambda _m, _a, out, key=name: self._tap(key, out)))

    def _tap(self, key: str, x: torch.Tensor) -> torch.Tensor:
        if self.samples is not None:
            self.samples.setdefault(key, []).append(x.detach().flatten().numpy()[::3])
            return x
        return fake_quant(x, *self.ranges[key], self.bits) if key in self.ranges else x

    def calibrate(self, clips: list[np.ndarray]) -> None:
        self.samples = {}
        for clip in clips:
            encode(self.encoder, clip)
        for key, parts in self.samples.items():
            values = np.concatenate(parts)
            self.ranges[key] = (float(np.percentile(values, 100 - self.percentile)),
                                float(np.percentile(values, self.percentile)))
        self.samples = None

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        modules = dict(self.encoder.named_modules())
        for name, weight in self.weights.items():
            modules[name].weight.data = weight


def encode(encoder: torch.nn.Module, audio: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return encoder(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None])


def floor_frames(audio: np.ndarray, frames: int, floor_dbfs: float) -> np.ndarray:
    """Frames of the 128-frame steps whose RMS is below the floor: the runtime runs those steps in FP32."""
    quiet = np.zeros(frames, dtype=bool)
    for start in range(0, frames, STEP):
        part = audio[start * HOP:(start + STEP) * HOP].astype(np.float64)
        power = float(np.mean(np.square(part))) if part.size else 0.0
        quiet[start:start + STEP] = power <= 0 or 10 * math.log10(power) < floor_dbfs
    return quiet


def calibration_clips(folder: str, count: int, seconds: float, seed: int) -> list[np.ndarray]:
    files = sorted(glob.glob(str(Path(folder) / "*.*")))
    files = [f for f in files if Path(f).suffix.lower() in (".wav", ".flac", ".ogg")]
    rng = np.random.default_rng(seed)
    clips = []
    for path in rng.choice(files, min(count, len(files)), replace=False):
        audio, _ = read_audio(str(path), RATE)
        length = int(seconds * RATE)
        start = int(rng.integers(0, max(1, audio.size - length)))
        clips.append(audio[start:start + length])
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dev", default="/work/shared/audio/dev")
    parser.add_argument("--calib", default="/work/shared/audio/train")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--floor", type=float, default=-45.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(args.checkpoint).model.eval()
    encoder, rvq = model.encoder, model.quantizer
    clips = calibration_clips(args.calib, args.clips, args.seconds, seed=0)
    dev = [read_audio(p, RATE)[0] for p in sorted(glob.glob(str(Path(args.dev) / "*.wav")))]
    reference = [rvq.quantize_codes(encode(encoder, x)).numpy()[0] for x in dev]
    frames = sum(c.shape[-1] for c in reference)
    every_conv = {n for n, m in encoder.named_modules() if isinstance(m, torch.nn.Conv1d)}
    blocks = {i: {n for n in every_conv if n.startswith(f"blocks.{i}.")} for i in range(len(encoder.blocks))}
    variants = [("every tensor (ORT's wider op set)", ("in", "out", "act", "add"), 8, set()),
                ("convolutions: inputs and outputs (QLinearConv)", ("in", "out"), 8, set()),
                ("convolution inputs only, 8 bits", ("in",), 8, set()),
                *[(f"convolution inputs only, {b} bits", ("in",), b, set()) for b in (9, 10, 11)],
                ("weights only", (), 8, set()),
                *[(f"only block {i} quantized (in+out)", ("in", "out"), 8, every_conv - blocks[i]) for i in blocks]]
    print(f"{len(dev)} held-out clips, {frames} frames; ranges at the {args.percentile}th percentile of "
          f"{len(clips)} calibration clips; steps below {args.floor:g} dBFS float")
    print(f"{'variant':50s} " + " ".join(f"cb{i + 1:<4d}" for i in range(reference[0].shape[0])))
    for label, points, bits, keep_float in variants:
        hooked = FakeQuantEncoder(encoder, points, bits, args.percentile, set(FLOAT_CONVS) | keep_float)
        hooked.calibrate(clips)
        equal = np.zeros(reference[0].shape[0])
        for audio, codes in zip(dev, reference, strict=True):
            quantized = rvq.quantize_codes(encode(encoder, audio)).numpy()[0]
            quantized = np.where(floor_frames(audio, codes.shape[-1], args.floor)[None], codes, quantized)
            equal += (quantized == codes).sum(axis=-1)
        hooked.remove()
        print(f"{label:50s} " + " ".join(f"{100 * e / frames:5.1f}" for e in equal), flush=True)


if __name__ == "__main__":
    main()
