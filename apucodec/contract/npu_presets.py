"""Which NPU quantization preset a graph's operators allow, and why (torch-free: quantize and doctor read it).

The Vitis AI EP's power-of-two INT8 flow (XINT8, the default) does not list Sin, which the A8W8/A16W8 flows and the
BF16 flow do (issue 24, from AMD's "Supported Operators" table; Sin is the last row of what
apucodec/contract/npu_ops.py could retrieve, which merges the INT8 columns). DAC's Snake activation,
x + sin^2(alpha x) / alpha, is a Sin in every residual unit, so an XINT8 DAC encoder would leave dozens of nodes to
the EP's CPU fallback. `auto` therefore picks A16W8 for such graphs: int16 activations keep Snake's small
sin^2 term (added to x) resolvable, where 8 bits would round much of it away.
"""

from __future__ import annotations

from collections.abc import Mapping

# Ops the XINT8 flow lacks but A8W8 / A16W8 (and BF16) have.
XINT8_MISSING_OPS = frozenset({"Sin"})
AUTO = "auto"
DEFAULT = "xint8"
FALLBACK = "a16w8"


def choose_npu_preset(ops: Mapping[str, int] | None) -> tuple[str, str]:
    """(preset name, one-line reason) for an FP32 graph with op-type counts `ops` (None: unknown, the default)."""
    missing = sorted(op for op in (ops or {}) if op in XINT8_MISSING_OPS)
    if ops is None:
        return DEFAULT, "the graph's op counts are not in the manifest; using the NPU default"
    if not missing:
        return DEFAULT, "every op of the graph is on the XINT8 list (the NPU default, power-of-two scales)"
    found = ", ".join(f"{op} x{ops[op]}" for op in missing)
    return FALLBACK, (f"the graph has {found} (e.g. DAC's Snake activations), which the NPU's XINT8 flow does not "
                      f"list and A16W8 does; int16 activations keep x + sin^2(ax)/a's small term")
