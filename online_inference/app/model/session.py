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


# Each tensor type the graph takes or gives, as numpy and as ONNX Runtime name it.
ORT_TYPES = {np.dtype(np.float32): "tensor(float)", np.dtype(np.int64): "tensor(int64)"}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the graph's signature: its name, element type and shape (-1: any rows)."""

    name: str
    dtype: np.dtype  # type: ignore[type-arg]
    shape: tuple[int, ...]


def signature(card: ModelCard) -> tuple[TensorSpec, list[TensorSpec]]:
    """The graph's input and outputs (in order), as the card says they must be: float32 rows of the
    features in; the labels (int64), a probability per class (float32) and, if the card has them,
    a contribution per feature (float32) out."""
    rows = TensorSpec(card.input_name, np.dtype(np.float32), (-1, len(card.features)))
    outputs = [TensorSpec(card.label_output, np.dtype(np.int64), (-1,)),
               TensorSpec(card.probability_output, np.dtype(np.float32), (-1, len(card.classes)))]
    if card.contributions.output is not None:
        outputs.append(TensorSpec(card.contributions.output, np.dtype(np.float32), (-1, len(card.features))))
    return rows, outputs


class ModelLoadError(Exception):
    """The artifact cannot be served (corrupt, unexpected signature, wrong checksum...)."""


@dataclass(slots=True)  # (not frozen: a frozen dataclass's __init__ costs three times as much, per request)
class Prediction:
    labels: np.ndarray  # int64 [N]
    probabilities: np.ndarray  # float32 [N, n_classes]
    positive: np.ndarray  # float32 [N]: P(positive class)
    contributions: np.ndarray | None = None  # float32 [N, features], logit units; None if the model has none

    def tensors(self) -> list[np.ndarray]:
        """The outputs in the order of the graph's signature (:func:`signature`)."""
        extra = [] if self.contributions is None else [self.contributions]
        return [self.labels, self.probabilities, *extra]

    def rows(self, start: int, stop: int) -> Prediction:
        contributions = None if self.contributions is None else self.contributions[start:stop]
        return Prediction(self.labels[start:stop], self.probabilities[start:stop], self.positive[start:stop], contributions)


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
        self.explain_feeds = {self.card.contributions.flag: np.array(True)} if self.card.contributions.flag else {}
        self.positive_column = self.card.classes.index(self.card.positive_class)
        self.input, self.outputs = signature(self.card)
        self.output_names = [spec.name for spec in self.outputs]  # what an explained call fetches
        self.answer_names = self.output_names[:2]  # what every other call fetches: labels and probabilities

    def check_signature(self) -> None:
        """The graph must take and give what the card says (:func:`signature`)."""
        expected_input, expected_outputs = signature(self.card)
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        problems = []
        spec = inputs.get(expected_input.name)
        width = expected_input.shape[1]
        if len(inputs) != 1 or spec is None:
            problems.append(f"expected one input {expected_input.name!r}, found {sorted(inputs)}")
        elif spec.type != ORT_TYPES[expected_input.dtype] or len(spec.shape) != 2 or spec.shape[1] != width:
            problems.append(f"input {spec.name!r} is {spec.type}{spec.shape}, expected float [N, {width}]")
        flag = self.card.contributions.flag
        if flag and [(i.name, i.type) for i in self.session.get_overridable_initializers() if i.name == flag] != [(flag, "tensor(bool)")]:
            problems.append(f"expected a bool input {flag!r} with a default (the contributions' flag)")
        for expected in expected_outputs:
            kind = ORT_TYPES[expected.dtype]
            if expected.name not in outputs or outputs[expected.name].type != kind:
                problems.append(f"expected output {expected.name!r} of {kind}")
        if problems:
            raise ModelLoadError("model signature does not match its card: " + "; ".join(problems))

    def run(self, X: np.ndarray, explain: bool = False) -> Prediction:
        """Labels and probabilities of the float32 ``[N, features]`` rows ``X``, and their
        contributions if ``explain`` (the card's flag: a call without it computes none)."""
        if explain:
            labels, probabilities, contributions = self.session.run(self.output_names, {self.input.name: X, **self.explain_feeds})
        else:
            (labels, probabilities), contributions = self.session.run(self.answer_names, {self.input.name: X}), None
        return Prediction(labels, probabilities, probabilities[:, self.positive_column], contributions)
