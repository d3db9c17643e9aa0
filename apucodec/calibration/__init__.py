"""INT8 graphs calibrated on real audio streamed through the step graphs: for the NPU (AMD Quark presets,
`quantize.py`) and for the CPU EP (onnxruntime.quantization with uint8 activations, `cpu_int8.py`, generic over any
graph and feed dicts), plus calibration clips/feeds, fidelity and NPU op checks.

Import the submodules directly (`apucodec.calibration.quantize.quantize_encoder`); amd-quark itself is imported
only inside the Quark pass, so listing clips or checking a graph's ops never pays for it.
"""
