"""apucodec: the APU-Codec neural audio codec, from a PyTorch checkpoint to inference split across an AMD Ryzen AI
APU's NPU (encoder), CPU (residual vector quantizer) and GPU (decoder).

    import apucodec
    codec = apucodec.load()                         # the bundled model (FP32), or apucodec.load("model-dir")
    codes = codec.encode(audio, sample_rate=48000)  # any rate, [n] or [n, channels] (each coded) -> Codes
    audio44 = codec.decode(codes)                   # float32 at codec.sample_rate, the input's length and channels
    with codec.stream() as s: ...                   # live: s.encode(chunk), s.decode(codes); then s.flush()

Errors a caller tells apart: InputError, ModelError, PlacementError (all ApucodecError).

Importing the package is cheap and torch-free on purpose: deployed machines install only onnxruntime, numpy and
audio I/O, so nothing here may pull in the training stack.
"""

__version__ = "0.1.0"

from typing import Any

from apucodec.errors import ApucodecError, InputError, ModelError, PlacementError

__all__ = ["ApucodecError", "Codec", "Codes", "InputError", "ModelError", "PlacementError", "__version__", "load"]


def __getattr__(name: str) -> Any:
    # The API pulls in onnxruntime; importing the package (for its version, its errors, the CLI's --help) must not.
    if name in ("load", "Codec"):
        from apucodec import api

        return getattr(api, name)
    if name == "Codes":
        from apucodec.codes import Codes

        return Codes
    raise AttributeError(f"module 'apucodec' has no attribute {name!r}")
