"""INT8 encoder for the NPU: calibration windows from real audio, AMD Quark presets, fidelity and NPU op checks.

Import the submodules directly (`apucodec.calibration.quantize.quantize_encoder`); amd-quark itself is imported
only inside the quantization pass, so listing windows or checking a graph's ops never pays for it.
"""
