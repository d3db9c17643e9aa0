"""INT8 encoder for the NPU: calibration clips streamed through the step graph, AMD Quark presets, fidelity and NPU
op checks.

Import the submodules directly (`apucodec.calibration.quantize.quantize_encoder`); amd-quark itself is imported
only inside the quantization pass, so listing clips or checking a graph's ops never pays for it.
"""
