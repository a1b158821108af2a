"""Online inference for the UCI Cleveland heart-disease classifier (ONNX + FastAPI)."""

__version__ = "1.0.0"
