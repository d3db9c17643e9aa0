"""EnCodec's encoder and decoder as step graphs, on the cached-convolution machinery of streaming.py.

What EnCodec adds to the project's causal networks:
- the LSTMs: their (h, c) per layer ride in the flat state next to the convolution caches (one slot of
  2 * layers * hidden values), so a step continues the recurrence exactly where the previous one stopped;
- reflect padding at the file's start: EnCodec's causal convs pad the left with x[p], ..., x[1] rather than zeros.
  A zero state is the start of a stream, so on a stream's first step (bounds[0] == 0) each such conv adds the
  reflection of its step input to its (zero) cache. That needs the step to hold p + 1 samples at that layer: a graph
  whose step is shorter cannot reproduce the start and must not run a stream's first step; `start_frames` says how
  long a first step must be, and the runtime runs it on the smallest graph that long (apucodec/runtime/stepper.py).
- before a reflecting conv, samples past the file's end are zeroed (EnCodec zero-extends a too-short signal before
  it reflects); everywhere else the networks are causal, so nothing after the end can reach an earlier output.
Every delay is zero: a causal network's output frame t is final once input frame t has arrived.
"""

from __future__ import annotations

import torch
from torch import nn

from apucodec.codec.encodec.layers import SLSTM, ResBlock, SConv, SConvTranspose
from apucodec.codec.encodec.model import SEANetDecoder, SEANetEncoder
from apucodec.export.streaming import (
    BoundsMask,
    StepNetwork,
    StreamConv,
    StreamConvTranspose,
    Track,
    _Layout,
    _Step,
)


def _first_step(bounds: torch.Tensor) -> torch.Tensor:
    """1.0 on a stream's first step (no frames consumed before it), else 0.0: Mul/Add/Max/Min only (no Clip, which
    the NPU's BF16 list lacks)."""
    zero, one = torch.zeros(1), torch.ones(1)
    return torch.minimum(torch.maximum(bounds[0:1] * -1.0 + 1.0, zero), one)


class StreamSConv(StreamConv):
    """A causal SConv over cache + step, its cache replaced by the step's own reflection on a stream's first step."""

    def __init__(self, conv: SConv, track: Track, layout: _Layout, name: str, samples: int) -> None:
        super().__init__(conv, track, layout, name)
        pad = conv.left_padding
        if self.length != pad or self.track_out.delay != track.delay:
            raise ValueError(f"{name}: not a causal conv (cache {self.length}, padding {pad})")
        self.pad = pad if conv.pad_mode == "reflect" else 0
        self.rate = track.rate
        self.reflects = bool(self.pad) and samples >= self.pad + 1
        if self.reflects:
            self.register_buffer("mirror", torch.arange(self.pad, 0, -1))   # x[p], ..., x[1]
            self.mask = BoundsMask(track, samples)

    def extend(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        if not self.length:
            return x
        cache = step.take(self.offset, self.channels, self.length)
        if self.reflects:
            x = self.mask(x, step)
            cache = cache + _first_step(step.bounds) * torch.index_select(x, 2, self.mirror)
        joined = torch.cat([cache, x], dim=-1)
        step.put(joined[..., joined.shape[-1] - self.length:])
        return joined


class StreamLSTM(nn.Module):
    """The SLSTM (y = lstm(x) + x) over one step, (h, c) of every layer carried in the flat state."""

    def __init__(self, module: SLSTM, layout: _Layout, name: str) -> None:
        super().__init__()
        self.lstm = module.lstm
        self.layers, self.hidden = self.lstm.num_layers, self.lstm.hidden_size
        self.offset = layout.claim(name, 2 * self.layers, self.hidden)

    def forward(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        n = self.layers * self.hidden
        h0 = step.state[:, self.offset: self.offset + n].reshape(self.layers, 1, self.hidden)
        c0 = step.state[:, self.offset + n: self.offset + 2 * n].reshape(self.layers, 1, self.hidden)
        seq = x.permute(2, 0, 1)
        y, (h, c) = self.lstm(seq, (h0, c0))
        step.put(h)
        step.put(c)
        return (y + seq).permute(1, 2, 0)


class StreamResBlock(nn.Module):
    """shortcut(x) + conv(ELU(conv(ELU(x)))), every conv streamed (causal: the two paths stay aligned)."""

    def __init__(self, unit: ResBlock, track: Track, layout: _Layout, name: str, samples: int) -> None:
        super().__init__()
        act1, conv1, act2, conv2 = unit.block
        self.act1, self.act2 = act1, act2
        self.conv1 = StreamSConv(conv1, track, layout, f"{name}.block.1", samples)
        self.conv2 = StreamSConv(conv2, track, layout, f"{name}.block.3", samples)
        self.shortcut = (StreamSConv(unit.shortcut, track, layout, f"{name}.shortcut", samples)
                         if isinstance(unit.shortcut, SConv) else None)

    def forward(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        branch = self.conv2(self.act2(self.conv1(self.act1(x), step)), step)
        return (self.shortcut(x, step) if self.shortcut is not None else x) + branch


class EncodecStepNetwork(StepNetwork):
    """A StepNetwork that also knows the shortest first step that reproduces EnCodec's reflect padding."""

    def __init__(self, kind: str, step_frames: int, hop: int) -> None:
        super().__init__(kind, step_frames, hop)
        self.start_frames = 1

    def add_layer(self, layer: nn.Module, name: str) -> None:
        samples = self._samples()
        if isinstance(layer, SConv):
            op: nn.Module = StreamSConv(layer, self.track, self.layout, name, samples)
            self._need(layer, self.track)
            if op.reflects:
                self.masked.append(self.track)
            self._add(op, op.track_out)
        elif isinstance(layer, SConvTranspose):
            op = StreamConvTranspose(layer, self.track, self.layout, name)
            self._add(op, op.track_out)
        elif isinstance(layer, ResBlock):
            for conv in (layer.block[1], layer.block[3]):
                self._need(conv, self.track)
            self._add(StreamResBlock(layer, self.track, self.layout, name, samples))
        elif isinstance(layer, SLSTM):
            self._add(StreamLSTM(layer, self.layout, name))
        elif isinstance(layer, nn.ELU):
            self.plain(layer)
        else:
            raise ValueError(f"{name}: no streaming form for {type(layer).__name__}")

    def _need(self, conv: SConv, track: Track) -> None:
        if conv.pad_mode == "reflect" and conv.left_padding:
            self.start_frames = max(self.start_frames, -(-(conv.left_padding + 1) // track.rate))


def build_encodec_steps(module: SEANetEncoder | SEANetDecoder, step_frames: int, hop: int) -> EncodecStepNetwork:
    """EnCodec's encoder ([1, 1, S*hop] -> [1, latent, S]) or decoder (the reverse) as a step network."""
    kind = "encoder" if isinstance(module, SEANetEncoder) else "decoder"
    net = EncodecStepNetwork(kind, step_frames, hop)
    for index, layer in enumerate(module.model):
        net.add_layer(layer, f"model.{index}")
    net.eval()
    return net
