"""Export the person-specific generator: ONNX (psi' folded), TensorRT FP16, and generator runtimes."""
