"""Each cache read from `state` is quantized on the grid of the Concat that joins it to the step's new input.

Why: a step graph keeps each layer's cache in the float `state` tensor; the cache is cut out of `state` by a
Slice/Reshape and joined to the step's input by a Concat, and the tail of that Concat is written back to
`next_state`. The Reshape is a quantized op, so calibration gives its output its *own* range, measured on the few
samples a cache holds per step; the Concat's range is measured on the whole layer input. The two differ (on the
bundled model's encoder the caches' percentile ranges were up to 45% narrower), so a cached value was rounded and
clipped to the cache's grid before it met the layer's grid: an error a value pays only when it crosses a step
boundary. A 128-frame one-shot step carries a few samples per layer across the boundary, a 4-frame live step most of
its context, so the same audio gave different codes streamed and one-shot: 5.5% of first-codebook codes on the dev
set, latent SNR 33.3 dB between the two (benchmarks/int8_stream_vs_oneshot.py).

With the cache's range tied to the Concat's output range, the cached value (already on that grid: it was cut from
the Concat's quantized output) is requantized exactly, and the step size no longer changes a single integer: the
same dev set streamed at 4 frames and run one-shot at 128 gives identical codes on all 8 codebooks.
"""

from __future__ import annotations

from typing import Any

STATE_INPUT = "state"
# Ops that only move a cache's values (no arithmetic): a value keeps its grid through them.
MOVE_OPS = frozenset({"Slice", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Flatten"})


def state_range_ties(model: Any, state_input: str = STATE_INPUT) -> dict[str, str]:
    """{cache tensor: Concat output}: every Concat input that is `state_input` moved by MOVE_OPS only, mapped to
    the output of the Concat it feeds. Empty for a graph without that input (whole-sequence graphs)."""
    from_state = {state_input}
    ties: dict[str, str] = {}
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if node.op_type in MOVE_OPS and node.input and node.input[0] in from_state:
            from_state.update(node.output)
        elif node.op_type == "Concat":
            for name in node.input:
                if name in from_state and name != state_input:
                    ties[name] = node.output[0]
    return ties


def tie_ranges(ranges: Any, ties: dict[str, str]) -> int:
    """Give each cache tensor of `ties` the calibrated range of its Concat (ORT TensorsData, edited in place).
    Returns how many ranges changed; tensors the calibration did not see (not quantized) are left alone."""
    changed = 0
    for cache, joined in ties.items():
        if cache in ranges and joined in ranges:
            ranges.data[cache] = ranges.data[joined]
            changed += 1
    return changed
