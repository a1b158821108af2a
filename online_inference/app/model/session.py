"""The ONNX Runtime session and its card: a model that knows nothing of HTTP."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

# ONNX Runtime >= 1.29 starts 1DS telemetry on import (a device-id file under $HOME, uploads).
# A service for sensitive data sends nothing anywhere: opt out before the import (also set in images).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort  # noqa: E402

from online_inference.card import ModelCard


class ModelLoadError(Exception):
    """The artifact cannot be served (corrupt, unexpected signature, wrong checksum...)."""


@dataclass(frozen=True)
class Prediction:
    labels: np.ndarray  # int64 [N]
    probabilities: np.ndarray  # float32 [N, n_classes]
    positive: np.ndarray  # float32 [N]: P(positive class)

    def rows(self, start: int, stop: int) -> Prediction:
        return Prediction(self.labels[start:stop], self.probabilities[start:stop], self.positive[start:stop])


def session_options() -> ort.SessionOptions:
    """Tuned for many small requests on a small machine: one thread, no thread pool hand-offs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


class ModelSession:
    def __init__(self, payload: bytes, expected_sha256: str | None = None):
        self.sha256 = hashlib.sha256(payload).hexdigest()
        if expected_sha256 and self.sha256 != expected_sha256.lower():
            raise ModelLoadError(f"sha256 mismatch: expected {expected_sha256.lower()}, got {self.sha256}")
        try:
            self.session = ort.InferenceSession(payload, session_options(), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"not a loadable ONNX model: {error}") from error
        metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            self.card = ModelCard.from_metadata(metadata, self.sha256)
        except ValueError as error:
            raise ModelLoadError(f"invalid model card: {error}") from error
        self.check_signature()
        self.positive_column = self.card.classes.index(self.card.positive_class)
        self.outputs = [self.card.label_output, self.card.probability_output]

    def check_signature(self) -> None:
        """The graph must take and give what the card says."""
        card = self.card
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        problems = []
        spec = inputs.get(card.input_name)
        if len(inputs) != 1 or spec is None:
            problems.append(f"expected one input {card.input_name!r}, found {sorted(inputs)}")
        elif spec.type != "tensor(float)" or len(spec.shape) != 2 or spec.shape[1] != len(card.features):
            problems.append(f"input {spec.name!r} is {spec.type}{spec.shape}, expected float [N, {len(card.features)}]")
        expected_outputs = {card.label_output: "tensor(int64)", card.probability_output: "tensor(float)"}
        for name, kind in expected_outputs.items():
            if name not in outputs or outputs[name].type != kind:
                problems.append(f"expected output {name!r} of {kind}")
        if problems:
            raise ModelLoadError("model signature does not match its card: " + "; ".join(problems))

    def predict(self, X: np.ndarray) -> Prediction:
        """Labels and probabilities of the float32 ``[N, features]`` rows ``X``."""
        labels, probabilities = self.session.run(self.outputs, {self.card.input_name: X})
        return Prediction(labels=labels, probabilities=probabilities, positive=probabilities[:, self.positive_column])
