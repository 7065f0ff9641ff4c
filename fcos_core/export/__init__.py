"""Getting a trained model out: ONNX export and the inference fast path (BN folding, autocast)."""
