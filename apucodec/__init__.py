"""apucodec: the APU-Codec neural audio codec, from a PyTorch checkpoint to inference split across an AMD Ryzen AI
APU's NPU (encoder), CPU (residual vector quantizer) and GPU (decoder).

Importing the package is cheap and torch-free on purpose: deployed machines install only onnxruntime, numpy and
audio I/O, so nothing here may pull in the training stack.
"""

__version__ = "0.1.0"

from apucodec.errors import ApucodecError

__all__ = ["ApucodecError", "__version__"]
