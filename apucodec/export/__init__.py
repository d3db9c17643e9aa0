"""torch -> ONNX export: the files of a model directory (encoder and decoder step graphs, codebooks.npy) plus a
manifest that records how each was made and how closely it matches PyTorch.

The package itself imports nothing heavy, so torch-free code (the runtime, the CLI's option parsing) can read the
receptive-field arithmetic and graph specs (export/specs.py, with the default step sizes and opset); `export_model`
pulls in torch and onnx on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_model"]


def __getattr__(name: str) -> Any:
    if name == "export_model":
        from apucodec.export.model_export import export_model

        return export_model
    raise AttributeError(f"module 'apucodec.export' has no attribute {name!r}")
