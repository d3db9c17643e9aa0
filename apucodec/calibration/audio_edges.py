"""The nodes at a step graph's audio end that stay float in the CPU INT8 graphs: the audio is never 8-bit.

Why: uint8 QDQ quantizes every quantized op's input and output to 256 levels per tensor. At the audio end that
means 8-bit audio: the encoder's first convolution would read the waveform at 8 bits, and the decoder's last one
would write it at 8 bits. That is a noise floor ~48 dB under the loudest calibration sample, which is audible on
speech and swallows quiet passages whole. Measured on the bundled model over the dev set, with the decoder's audio
quantized: ViSQOL 2.47 -> 2.08, mel distance +0.16. These convolutions are the cheapest in either network (1
channel on their audio side), so keeping them float costs almost nothing. Their other side, the first hidden
activation or the last one, is still quantized.

Found by walking the graph: from the encoder's audio input forward, and from the decoder's audio output backward,
up to and including the first convolution met. The nodes on the way (the state cache joined to the step's audio,
the output mask, the final activation) stay float too.
"""

from __future__ import annotations

from collections import deque
from typing import Any

CONV_OPS = ("Conv", "ConvTranspose")


def _walk(start: str, nexts: dict[str, list[Any]], follow: Any) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    queue = deque([start])
    while queue:
        tensor = queue.popleft()
        for node in nexts.get(tensor, []):
            if node.name in seen:
                continue
            seen.add(node.name)
            names.append(node.name)
            if node.op_type not in CONV_OPS:
                queue.extend(follow(node))
    return names


def audio_edge_nodes(model: Any, stage: str) -> list[str]:
    """Names of the nodes between the audio and the nearest convolution (that convolution included): after the
    encoder's first graph input, before the decoder's first graph output."""
    graph = model.graph
    if stage == "encoder":
        consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        return _walk(graph.input[0].name, consumers, lambda node: list(node.output))
    if stage == "decoder":
        producers = {name: [node] for node in graph.node for name in node.output}
        return _walk(graph.output[0].name, producers, lambda node: list(node.input))
    raise ValueError(f"unknown stage {stage!r}")


def latent_edge_nodes(model: Any, stage: str) -> list[str]:
    """Names of the nodes between the latent and the nearest convolution (that convolution included): before the
    encoder's latent output, after the decoder's latent input.

    Why float there: a uint8 latent has 256 levels per tensor over its whole range, coarser than the residuals the
    later codebooks quantize, so those codes become noise. Measured on the bundled model over the dev set
    (benchmarks/int8_agreement.py; docs/bench/int8-agreement.md): keeping the encoder's latent projection float
    is what raises the codes' agreement with FP32. Its input, the last hidden activation, is still uint8.
    """
    graph = model.graph
    if stage == "encoder":
        producers = {name: [node] for node in graph.node for name in node.output}
        return _walk(graph.output[0].name, producers, lambda node: list(node.input))
    if stage == "decoder":
        consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        return _walk(graph.input[0].name, consumers, lambda node: list(node.output))
    raise ValueError(f"unknown stage {stage!r}")
