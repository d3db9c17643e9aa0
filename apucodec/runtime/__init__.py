"""Inference without torch: ONNX Runtime sessions placed per stage, NumPy RVQ, stateful step graphs, overlapped lanes.

    from apucodec.runtime import CodecEngine
    codec = CodecEngine.open("apucodec-model")
    result = codec.run_file("in.wav", "out.wav")

Only onnxruntime, numpy and audio I/O are imported here (never torch, onnx or quark); `doctor` and `bench`
(apucodec.tools) build on these modules, never the other way round. Names are resolved lazily so
`import apucodec.runtime` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CodecEngine", "RunResult", "SessionSettings", "PlacementReport"]


def __getattr__(name: str) -> Any:
    if name in ("CodecEngine", "RunResult"):
        from apucodec.runtime import codec_runner
        return getattr(codec_runner, name)
    if name == "SessionSettings":
        from apucodec.runtime.stage_plan import SessionSettings

        return SessionSettings
    if name == "PlacementReport":
        from apucodec.runtime.placement import PlacementReport

        return PlacementReport
    raise AttributeError(f"module 'apucodec.runtime' has no attribute {name!r}")
