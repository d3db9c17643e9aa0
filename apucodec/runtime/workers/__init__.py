"""Graph stages in worker processes, optionally under another Python with another onnxruntime.

Why: AMD's Vitis AI EP ships as its own onnxruntime build in its own venv, and the WebGPU plugin EP needs a newer
stock onnxruntime, so on Linux the NPU encoder and the GPU decoder cannot share one Python process. A worker runs
one stage's session in a child process (child.py, which needs only numpy and onnxruntime), exchanging steps through
shared memory; see session.py for the engine-facing side and plan.py for `--worker STAGE=PYTHON|self`.
"""
