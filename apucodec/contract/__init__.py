"""The torch-free contract between export, calibration and the runtime: the codec configuration, the step-graph
geometry and the model directory's manifest. Nothing here imports torch, onnx or onnxruntime."""
