"""Quark's ONNX Runtime custom-op library: when a quantized graph needs it, and how to load it without torch.

The INT8 presets (XINT8, A8W8, A16W8) emit standard QuantizeLinear/DequantizeLinear (A16W8 in the com.microsoft
domain, which ONNX Runtime's CPU EP implements), so their graphs load in a plain session. The BF16 preset emits
`com.amd.quark` ExtendedQuantizeLinear/ExtendedDequantizeLinear, which only load after
`SessionOptions.register_custom_ops_library(<quark library>)`. That library is JIT-compiled by amd-quark on first
`import quark.onnx` into TORCH_EXTENSIONS_DIR and links torch's native libraries (libc10, libtorch_cpu); this module
finds it and preloads those native libraries with ctypes, so a session can register it without importing the torch
Python package (the runtime's rule). It is still only usable where amd-quark and torch are installed — the manifest
records the requirement so that the runtime can say so plainly. torch-free.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from apucodec.errors import ApucodecError

QUARK_DOMAIN = "com.amd.quark"
LIBRARY_BASENAME = "quark_custom_ops_stable_abi"   # amd-quark 0.13's JIT build name (ONNX_CUSTOM_OPS_JIT_BASENAME)
CACHE_ENV = "APUCODEC_QUARK_CACHE"


def quark_cache_dir() -> Path:
    """Where amd-quark's JIT-compiled extensions live: $APUCODEC_QUARK_CACHE, else ~/.cache/apucodec/quark.

    Set as TORCH_EXTENSIONS_DIR before `import quark.onnx`, so the ~1 minute g++ build happens once per machine
    (and once per CI run, since the tests share it) instead of landing in torch's default per-version cache.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "apucodec" / "quark"


def custom_domains(node_domains: Iterable[str]) -> list[str]:
    """The non-standard op domains among `node_domains` that need a library ONNX Runtime does not ship."""
    return sorted({d for d in node_domains if d == QUARK_DOMAIN})


def find_library(extra_dirs: Iterable[Path] = ()) -> Path | None:
    """The compiled Quark custom-op library, looked up without importing quark (or torch)."""
    suffix = ".dll" if sys.platform == "win32" else ".so"
    roots = [*extra_dirs, quark_cache_dir()]
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        roots.append(Path(os.environ["TORCH_EXTENSIONS_DIR"]))
    for root in roots:
        folder = Path(root) / LIBRARY_BASENAME
        if folder.is_dir():
            for candidate in sorted(folder.glob(f"{LIBRARY_BASENAME}*{suffix}")):
                return candidate
    try:
        spec = importlib.util.find_spec("quark")
    except (ImportError, ValueError, AttributeError):   # a broken or blocked install
        spec = None
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations))) / "onnx" / "operators" / "custom_ops"
        for candidate in sorted(package.glob(f"_C*{suffix}")):   # a precompiled wheel build, if present
            return candidate
    return None


def _preload_torch_native_libraries() -> None:
    """Load libc10/libtorch_cpu globally so the Quark library's undefined symbols resolve (no `import torch`)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError, AttributeError):
        spec = None
    if spec is None or spec.origin is None:
        raise ApucodecError("this encoder uses Quark custom ops, whose library needs torch's native libraries; "
                            "install them with: pip install 'apucodec[quantize]'")
    lib_dir = Path(spec.origin).parent / "lib"
    names = ("c10.dll", "torch_cpu.dll") if sys.platform == "win32" else ("libc10.so", "libtorch_cpu.so")
    for name in names:
        path = lib_dir / name
        if path.exists():
            ctypes.CDLL(str(path), mode=getattr(ctypes, "RTLD_GLOBAL", 0))


def register_custom_ops(session_options: Any, domains: Iterable[str]) -> str | None:
    """Register Quark's library on `session_options` if `domains` need it; returns the library path used."""
    if not custom_domains(domains):
        return None
    library = find_library()
    if library is None:
        raise ApucodecError(f"this encoder uses {QUARK_DOMAIN} custom ops, but amd-quark's compiled custom-op "
                            f"library was not found under {quark_cache_dir()}; run 'apucodec quantize-encoder' "
                            "once on this machine or install apucodec[quantize]")
    _preload_torch_native_libraries()
    try:
        session_options.register_custom_ops_library(str(library))
    except Exception as exc:  # onnxruntime raises its own Fail type with the dlopen message
        raise ApucodecError(f"{library}: cannot load Quark's custom-op library ({exc})") from None
    return str(library)
