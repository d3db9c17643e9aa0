"""Lazy imports of optional heavy dependencies, each mapped to the pip extra that provides it.

The runtime must stay installable with onnxruntime + numpy + audio I/O alone, so torch, onnx, amd-quark and
matplotlib are imported only by the commands that need them, and a missing one names the extra to install instead
of surfacing an ImportError traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from apucodec.errors import ApucodecError


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise a one-line error telling the user which apucodec extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ApucodecError(
            f"{module} is not installed ({exc.msg}); install it with: pip install 'apucodec[{extra}]'"
        ) from None
