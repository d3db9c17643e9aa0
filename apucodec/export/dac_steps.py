"""DAC's encoder and decoder as step networks, built with the same cached-convolution machinery as APU-Codec's
(apucodec/export/streaming.py): weight norm folded into plain convolutions, Snake as a stateless op, a bounds mask
after every layer whose output feeds a padded convolution.

A DAC residual unit is snake -> conv7(dilated) -> snake -> conv1x1, added to its input. StreamResidual runs
`norm -> conv1 -> act1 -> conv2 -> act2` with a delayed skip, so the unit is handed over as exactly that with
norm = the first Snake and act2 = identity. Snake(0) = 0, so masking before or after it is the same.
DAC 1.0.0's transposed convolutions have no output_padding: with an odd stride the whole-file signal ends a few
samples before frames * rate, and the masks after it are told so (`shorten`), so streamed output equals DAC's.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from apucodec.codec.dac.model import DacModel
from apucodec.codec.dac.modules import ResidualUnit, upsampling_shortfall
from apucodec.export.streaming import StepNetwork


@dataclass
class _Unit:
    """A folded DAC residual unit in the attribute names StreamResidual reads."""

    norm: nn.Module
    conv1: nn.Conv1d
    act1: nn.Module
    conv2: nn.Conv1d
    act2: nn.Module


def _unit(unit: ResidualUnit) -> _Unit:
    snake1, conv7, snake2, conv1 = unit.block
    return _Unit(snake1, conv7.plain(), snake2, conv1.plain(), nn.Identity())


def count_weight_norms(model: DacModel) -> int:
    return sum(1 for m in model.modules() if hasattr(m, "weight_g"))


def build_dac_encoder_steps(model: DacModel, step_frames: int) -> StepNetwork:
    """[1, 1, S*hop] audio -> [1, latent, S], exact against DacEncoder on a preprocessed (hop-padded) input."""
    cfg = model.config
    net = StepNetwork("encoder", step_frames, cfg.hop_length)
    layers = list(model.encoder.block)
    net.conv(layers[0].plain(), "block.0")
    net.mask()
    for i, block in enumerate(layers[1:-2], start=1):
        *units, snake, down = block.block
        for j, unit in enumerate(units):
            net.residual(_unit(unit), f"block.{i}.block.{j}")
            net.mask()
        net.plain(snake)
        net.conv(down.plain(), f"block.{i}.block.4")
        net.mask()
    net.plain(layers[-2])
    net.conv(layers[-1].plain(), f"block.{len(layers) - 1}")
    return net.eval()


def build_dac_decoder_steps(model: DacModel, step_frames: int) -> StepNetwork:
    """[1, latent, S] -> [1, 1, S*hop] audio (tanh), exact against DacDecoder."""
    cfg = model.config
    net = StepNetwork("decoder", step_frames, cfg.hop_length)
    layers = list(model.decoder.model)
    net.conv(layers[0].plain(), "model.0")
    net.mask()
    for i, (block, stride) in enumerate(zip(layers[1:-3], cfg.decoder_rates, strict=True), start=1):
        snake, up, *units = block.block
        net.plain(snake)
        net.conv(up.plain(), f"model.{i}.block.1")
        net.shorten(upsampling_shortfall(stride))
        net.mask()
        for j, unit in enumerate(units, start=2):
            net.residual(_unit(unit), f"model.{i}.block.{j}")
            net.mask()
    net.plain(layers[-3])
    net.conv(layers[-2].plain(), f"model.{len(layers) - 2}")
    net.plain(nn.Tanh())
    return net.eval()


def build_dac_steps(model: DacModel, stage: str, step_frames: int) -> StepNetwork:
    build = build_dac_encoder_steps if stage == "encoder" else build_dac_decoder_steps
    net = build(model, step_frames)
    for p in net.parameters():
        p.requires_grad_(False)
    return net
