"""Step graphs: the encoder and decoder rebuilt to stream exactly, one static step at a time, with explicit state.

A step takes S frames of new input (S * hop samples for the encoder, S latent frames for the decoder), the state
left by the previous step and two bounds, and returns S frames of output plus the next state. The idea is IRCAM's
cached convolutions, made exact at the file's ends:

- every convolution keeps the tail of its past input (its *cache*) and computes only the outputs the new input
  completes; "same" padding on the right therefore becomes a fixed output *delay*, tracked per layer;
- a strided convolution's cache is lengthened by up to stride - 1 samples so its output phase matches the
  whole-file network's; a transposed convolution keeps its previous input frame(s) for the overlap-add;
- a residual branch's skip path is delayed by its convolutions' delay, so the sum stays aligned;
- after every layer whose output feeds a convolution, samples that lie outside the whole-file signal (before its
  start, or past its end once the end is known) are set to zero: that is exactly the zero padding the whole-file
  network's next convolution sees. `bounds` = (frames already consumed before this step, frames left from this
  step's start), both clamped by the runtime to +-horizon, tells the graph where the ends are.

Zero state is the start of a stream. All caches are packed into one flat state tensor whose layout does not depend
on S, so graphs of different step sizes can hand a stream over to each other (the runtime finishes a file with the
small live step instead of padding a large one). Pooled normalisation (the seed's GroupNorm) cannot stream exactly:
it runs on statistics carried in the state from the stream's start (apucodec/export/running_norm.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from apucodec.codec.modules import Decoder, Encoder, left_padding
from apucodec.export.running_norm import RUNNING, stream_norm


@dataclass(frozen=True)
class Track:
    """Where a signal is in time: `rate` samples per latent frame, `delay` = stream index - whole-file index, and
    `short`: samples by which the whole-file signal at this layer ends before frames * rate (DAC's odd strides)."""

    rate: int
    delay: int
    short: int = 0


class _Step:
    """What one forward call threads through the ops: the packed state in, the next state's parts out."""

    def __init__(self, state: torch.Tensor, bounds: torch.Tensor) -> None:
        self.state = state
        self.bounds = bounds
        self.parts: list[torch.Tensor] = []

    def take(self, offset: int, channels: int, length: int) -> torch.Tensor:
        return self.state[:, offset: offset + channels * length].reshape(1, channels, length)

    def put(self, tensor: torch.Tensor) -> None:
        self.parts.append(tensor.reshape(1, -1))


class _Layout:
    """Assigns each cache its slice of the flat state, in the order the ops run."""

    def __init__(self) -> None:
        self.size = 0
        self.buffers: list[tuple[str, int, int]] = []

    def claim(self, name: str, channels: int, length: int) -> int:
        offset = self.size
        self.buffers.append((name, channels, length))
        self.size += channels * length
        return offset


class _Cached(nn.Module):
    """Prepends a cache of `length` past samples to the step's input and stores the new tail."""

    def __init__(self, layout: _Layout, name: str, channels: int, length: int) -> None:
        super().__init__()
        self.channels, self.length = channels, length
        self.offset = layout.claim(name, channels, length) if length else 0

    def extend(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        if not self.length:
            return x
        joined = torch.cat([step.take(self.offset, self.channels, self.length), x], dim=-1)
        step.put(joined[..., joined.shape[-1] - self.length:])
        return joined


class StreamConv(_Cached):
    """A (strided, dilated) Conv1d over cache + new input: exactly N / stride new outputs, none recomputed."""

    def __init__(self, conv: nn.Conv1d, track: Track, layout: _Layout, name: str) -> None:
        stride, dilation, kernel = conv.stride[0], conv.dilation[0], conv.kernel_size[0]
        span = dilation * (kernel - 1) + 1
        pad = left_padding(conv)
        # At least span - stride past samples; then the phase: output q must start at a whole-file stride boundary.
        cache = span - stride + (pad - track.delay - (span - stride)) % stride
        super().__init__(layout, name, conv.in_channels, cache)
        self.stride, self.dilation = stride, dilation
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False) if conv.bias is not None else None
        if track.rate % stride or (track.short and stride > 1):
            raise ValueError(f"{name}: stride {stride} does not divide the {track.rate} samples per frame")
        self.track_out = Track(track.rate // stride, (cache + track.delay - pad) // stride, track.short)

    def forward(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        return F.conv1d(self.extend(x, step), self.weight, self.bias, stride=self.stride, dilation=self.dilation)


class StreamConvTranspose(_Cached):
    """A ConvTranspose1d whose overlap-add needs the previous input frame(s): they are its cache."""

    def __init__(self, conv: nn.ConvTranspose1d, track: Track, layout: _Layout, name: str) -> None:
        stride, kernel = conv.stride[0], conv.kernel_size[0]
        cache = math.ceil(kernel / stride) - 1
        super().__init__(layout, name, conv.in_channels, cache)
        self.stride = stride
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False) if conv.bias is not None else None
        self.track_out = Track(track.rate * stride, track.delay * stride + left_padding(conv), track.short * stride)

    def forward(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        full = F.conv_transpose1d(self.extend(x, step), self.weight, self.bias, stride=self.stride)
        begin = self.length * self.stride
        return full[..., begin: begin + x.shape[-1] * self.stride]


class BoundsMask(nn.Module):
    """Zeroes the samples of this step that lie outside the whole-file signal at this layer.

    Built from Add, Max, Min and Mul only (no Sub, no Clip): ops on both of AMD's NPU lists (INT8 and BF16), so
    the Vitis AI EP has no reason to leave them to its CPU fallback. The values are small integers, exact in float.
    """

    def __init__(self, track: Track, samples: int) -> None:
        super().__init__()
        self.rate = float(track.rate)
        # t - delay for each sample of the step (its whole-file index minus the step's start), and its negation.
        offsets = (torch.arange(samples, dtype=torch.float32) - track.delay).view(1, 1, -1)
        self.register_buffer("offsets", offsets + 1.0)
        self.register_buffer("negated", -offsets - track.short)
        self.register_buffer("zero", torch.zeros(1))
        self.register_buffer("one", torch.ones(1))

    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(x, self.zero), self.one)

    def forward(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        before, left = step.bounds[0] * self.rate, step.bounds[1] * self.rate
        started = self._unit(self.offsets + before)   # whole-file index >= 0
        not_ended = self._unit(self.negated + left)    # whole-file index < length
        return x * (started * not_ended)


class _Plain(nn.Module):
    """A stateless module (activation, per-step norm) in the op chain."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        return self.module(x)


class StreamResidual(nn.Module):
    """x + act2(conv2(act1(conv1(norm(x))))) with the skip path delayed to meet the branch."""

    def __init__(self, unit: nn.Module, track: Track, layout: _Layout, name: str, samples: int,
                 norm_mode: str = RUNNING) -> None:
        super().__init__()
        # claimed before the convs: state parts are put in the order the ops run
        self.norm = stream_norm(unit.norm, BoundsMask(track, samples), layout, f"{name}.norm", samples, norm_mode)
        self.conv1 = StreamConv(unit.conv1, track, layout, f"{name}.conv1")
        self.conv2 = StreamConv(unit.conv2, self.conv1.track_out, layout, f"{name}.conv2")
        self.act1, self.act2 = unit.act1, unit.act2
        self.track_out = self.conv2.track_out
        self.skip = _Cached(layout, f"{name}.skip", unit.conv1.in_channels, self.track_out.delay - track.delay)
        self.samples = samples

    def forward(self, x: torch.Tensor, step: _Step) -> torch.Tensor:
        branch = self.act2(self.conv2(self.act1(self.conv1(self.norm(x, step), step)), step))
        return self.skip.extend(x, step)[..., : self.samples] + branch


class StepNetwork(nn.Module):
    """The op chain of one step graph; forward(x, state, bounds) -> (y, next_state)."""

    def __init__(self, kind: str, step_frames: int, hop: int, norm_mode: str = RUNNING) -> None:
        super().__init__()
        self.kind, self.step_frames, self.hop, self.norm_mode = kind, step_frames, hop, norm_mode
        self.layout = _Layout()
        self.ops = nn.ModuleList()
        self.track = Track(hop if kind == "encoder" else 1, 0)
        self.masked: list[Track] = []

    # ---- building ------------------------------------------------------------------------------------------------

    def _samples(self) -> int:
        return self.step_frames * self.track.rate

    def _add(self, op: nn.Module, track: Track | None = None) -> None:
        self.ops.append(op)
        if track is not None:
            self.track = track

    def conv(self, conv: nn.Module, name: str) -> None:
        cls = StreamConvTranspose if isinstance(conv, nn.ConvTranspose1d) else StreamConv
        op = cls(conv, self.track, self.layout, name)
        self._add(op, op.track_out)

    def plain(self, module: nn.Module) -> None:
        self._add(_Plain(module))

    def mask(self) -> None:
        self.masked.append(self.track)
        self._add(BoundsMask(self.track, self._samples()))

    def shorten(self, samples: int) -> None:
        """The last layer's whole-file output ends `samples` before frames * rate (masks zero from there on)."""
        self.track = Track(self.track.rate, self.track.delay, self.track.short + samples)

    def residual(self, unit: nn.Module, name: str) -> None:
        op = StreamResidual(unit, self.track, self.layout, name, self._samples(), self.norm_mode)
        self._add(op, op.track_out)

    # ---- facts ---------------------------------------------------------------------------------------------------

    @property
    def state_size(self) -> int:
        return self.layout.size

    @property
    def delay_samples(self) -> int:
        """Output delay at the codec's sample rate (the stage's lookahead)."""
        return self.track.delay * (self.hop // self.track.rate)

    @property
    def horizon_frames(self) -> int:
        """How far from the stream's ends, in frames, a mask can still zero something: bounds beyond it are
        clamped by the runtime (keeps the float arithmetic exact however long the stream)."""
        reach = max((math.ceil(t.delay / t.rate) for t in self.masked), default=0)
        return reach + self.step_frames + 1

    def forward(self, x: torch.Tensor, state: torch.Tensor, bounds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        step = _Step(state, bounds)
        for op in self.ops:
            x = op(x, step)
        return x, torch.cat(step.parts, dim=1) if step.parts else state[:, :0]


def build_steps(module: Encoder | Decoder, step_frames: int, hop: int, norm_mode: str = RUNNING) -> StepNetwork:
    """The folded (plain-conv) encoder ([1, 1, S*hop] audio -> [1, latent, S]) or decoder (the reverse) as a step
    network, from the layers the module itself lists (`layers()`, the list its forward runs).

    A bounds mask follows every activation and residual unit whose output feeds another layer: the next padded
    convolution must see zeros outside the whole-file signal. The last layer's output is the graph's output, so
    it needs none. `norm_mode` matters to pooled-norm models only: running statistics in the state
    (running_norm.py), or each step's own statistics (the old graphs, kept for comparisons)."""
    net = StepNetwork("encoder" if isinstance(module, Encoder) else "decoder", step_frames, hop, norm_mode)
    layers = module.layers()
    for index, (kind, name, layer) in enumerate(layers):
        if kind == "conv":
            net.conv(layer, name)
            continue
        if kind == "residual":
            net.residual(layer, name)
        else:
            net.plain(layer)
        if index < len(layers) - 1:
            net.mask()
    net.eval()
    return net
