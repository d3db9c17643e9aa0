"""Signal arithmetic in NumPy that several layers share: quality metrics (SI-SDR, the multi-scale mel distance)
and generated test signals. Torch-free and free of the engine, so training, export parity, calibration's fidelity
report, `bench`, `eval` and the tests score and feed audio the same way.
"""
