"""The model: the ONNX Runtime session and its signature, and fetching the artifact. Knows no wire format."""
