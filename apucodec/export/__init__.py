"""torch -> ONNX export: the three files of a model directory (encoder.onnx, codebooks.npy, decoder.onnx) plus a
manifest that records how each was made and how closely it matches PyTorch.

The package itself imports nothing heavy, so torch-free code (the runtime, the CLI's option parsing) can read the
receptive-field arithmetic and graph specs; `export_model` pulls in torch and onnx on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_CHUNK_SECONDS", "DEFAULT_OPSET", "export_model"]

DEFAULT_CHUNK_SECONDS = 1.5
DEFAULT_OPSET = 17


def __getattr__(name: str) -> Any:
    if name == "export_model":
        from apucodec.export.pipeline import export_model

        return export_model
    raise AttributeError(f"module 'apucodec.export' has no attribute {name!r}")
