"""Training and ONNX export. Needs scikit-learn and skl2onnx; the service never imports this."""
