"""Quark quantization presets by name, and the one place amd-quark is imported.

Tested against amd-quark 0.13 (pinned in the `quantize` extra). That release's ONNX API is `QConfig` +
`ModelQuantizer` (the older `Config`/`get_default_config` still works but warns that it is going away). Two
quirks of 0.13 shape this module:

* `quantize_model` mutates the config it is given (algorithm options are merged into `extra_options`, the global
  config is normalised), so every call gets a deep copy of Quark's preset object, never the shared one.
* Quark's preset objects are built as `QConfig(..., extra_options={...})`, which lands the options one level too
  deep (`config.extra_options == {"extra_options": {...}}`) where the quantizer never reads them; we lift them
  back to the top level so the preset means what its definition says.

The first `import quark.onnx` JIT-compiles Quark's custom-op library with g++ (~1 minute); TORCH_EXTENSIONS_DIR is
pointed at apucodec's cache first so that happens once per machine.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from apucodec.calibration.custom_ops import quark_cache_dir
from apucodec.errors import ApucodecError, first_line, require

QUARK_VERSION_TESTED = "0.13"


@dataclass(frozen=True)
class Preset:
    name: str
    quark_name: str        # attribute of quark.onnx holding the QConfig
    description: str
    activation_bits: int
    weight_bits: int
    power_of_two_scales: bool
    npu_int8: bool         # an INT8 (CNN) flow of the Vitis AI EP compiler; BF16 compiles through another flow


PRESETS: dict[str, Preset] = {
    "xint8": Preset("xint8", "XINT8_QCONFIG", "int8 activations and weights, power-of-two scales (MinMSE): the NPU "
                    "preset", 8, 8, True, True),
    "a8w8": Preset("a8w8", "A8W8_QCONFIG", "int8 activations and weights, float scales (percentile)", 8, 8, False,
                   True),
    "a16w8": Preset("a16w8", "A16W8_QCONFIG", "int16 activations, int8 weights, float scales (percentile)", 16, 8,
                    False, True),
    "bf16": Preset("bf16", "BF16_QCONFIG", "bfloat16 activations and weights (Quark custom ops; needs amd-quark and "
                   "torch at run time)", 16, 16, False, False),
}
DEFAULT_PRESET = "xint8"


def preset(name: str) -> Preset:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ApucodecError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


def import_quark(verbose: bool = False) -> ModuleType:
    """`quark.onnx`, with its JIT cache and log level set first; a missing install names the extra to add.

    Quark reads QUARK_LOG_LEVEL once, at import; unless verbose, only critical messages pass (its errors reach
    us as exceptions and are reported as one line). Its import also reconfigures the root logger
    (`logging.basicConfig(force=True)` at INFO), which we undo so the host process keeps its own logging.
    """
    cache = quark_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(cache))
    os.environ.setdefault("QUARK_LOG_LEVEL", "info" if verbose else "critical")
    require("torch", "quantize")
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        return require("quark.onnx", "quantize")
    except ApucodecError:
        raise
    except Exception as exc:  # the JIT build of Quark's custom-op library failed (no C++ compiler, ninja, ...)
        raise ApucodecError(f"amd-quark failed to initialise ({first_line(exc, with_type=True)}); "
                            f"its first import compiles a custom-op library into {cache} and needs a C++ "
                            "compiler (g++) and ninja") from None
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def quark_version() -> str:
    quark = require("quark", "quantize")
    return str(getattr(quark, "__version__", "unknown"))


MINMSE_MODES = ("All", "MostCommon")
# Measured on the bundled model, xint8, 8 calibration steps of 128 frames, one run each on this 2-core box:
# "All" 174 s of Quark and a 16.3 GB peak, latent SNR 15.06 dB; "MostCommon" 5.8 s and 1.5 GB, 14.92 dB
# (end-to-end SI-SDR delta -0.30 vs -0.29 dB). "All" grows with steps x step size x width, so a 32.4M model
# could not finish; "MostCommon" costs one window's search at a time.
DEFAULT_MINMSE_MODE = "MostCommon"


def build_qconfig(quark_onnx: ModuleType, chosen: Preset, work_dir: str, exclude: Sequence[str] = (),
                  workers: int = 0, minmse_mode: str | None = DEFAULT_MINMSE_MODE) -> Any:
    """A private, deep-copied QConfig for `chosen`, with Quark's temp files and reports kept under `work_dir`;
    the nodes named in `exclude` stay in float.

    `workers`: threads for Quark's per-tensor range search (CalibWorkerNum; 0: one per CPU, at most 8) — Quark's
    default is 1, which left one core busy for the whole MinMSE search. `minmse_mode` (power-of-two presets):
    "All" (Quark's default) caches every calibration activation on disk and searches over all of them at the end;
    "MostCommon" (ours, DEFAULT_MINMSE_MODE says why) searches per window and keeps the most common scale, with no
    cache; None leaves Quark's choice.
    """
    config = copy.deepcopy(getattr(quark_onnx, chosen.quark_name))
    config.exclude = [*(config.exclude or []), *exclude]
    nested = config.extra_options.pop("extra_options", None)
    options = dict(nested or {})
    options.update(config.extra_options)
    options.update({"TmpDir": work_dir, "PrintSummary": False,
                    "CalibWorkerNum": workers or max(1, min(os.cpu_count() or 1, 8))})
    if minmse_mode is not None:
        if minmse_mode not in MINMSE_MODES:
            raise ApucodecError(f"unknown MinMSE mode {minmse_mode!r}; choose from {', '.join(MINMSE_MODES)}")
        options["MinMSEModePof2Scale"] = minmse_mode
    config.extra_options = options
    return config
