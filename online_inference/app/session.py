"""The ONNX Runtime session and its card: a model that knows nothing of HTTP."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

import numpy as np

# ONNX Runtime >= 1.29 starts 1DS telemetry on import (a device-id file under $HOME, uploads).
# A patient-data service sends nothing anywhere: opt out before the import (also set in images).
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


class OneRowLane:
    """The model's lane for one row, the request a deployment sends most: its input and outputs
    are arrays bound to the session once (ONNX Runtime's I/O binding), so a call copies the row
    in, runs, and copies the answer out. A plain run builds an input tensor and two output arrays
    on every call, and between a server's requests (their code out of the caches) that was a
    sixth of a one-row call. One caller at a time (a binding must not be shared): a caller that
    finds the lane busy (another thread) takes the plain run."""

    def __init__(self, session: ort.InferenceSession, card: ModelCard):
        self.x = np.zeros((1, len(card.features)), np.float32)
        self.labels = np.zeros(1, np.int64)
        self.probabilities = np.zeros((1, len(card.classes)), np.float32)
        # OrtValues made from numpy arrays on the CPU share their memory: the binding reads and
        # writes these very arrays, which live as long as the lane (and so the binding).
        self.values = [ort.OrtValue.ortvalue_from_numpy(a) for a in (self.x, self.labels, self.probabilities)]
        binding = session.io_binding()
        binding.bind_ortvalue_input(card.input_name, self.values[0])
        binding.bind_ortvalue_output(card.label_output, self.values[1])
        binding.bind_ortvalue_output(card.probability_output, self.values[2])
        self.binding = binding._iobinding
        self.run = getattr(session, "_sess", session).run_with_iobinding  # its checks hold by construction, as for run
        self.busy = threading.Lock()

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(labels, probabilities) of the one row ``X`` (float32 ``[1, 13]``), or None if the lane is busy."""
        if not self.busy.acquire(blocking=False):
            return None
        try:
            self.x[:] = X
            self.run(self.binding, None)
            return self.labels.copy(), self.probabilities.copy()
        finally:
            self.busy.release()


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
        # The binding's own run: the Python wrapper's checks on every call (feed names, graph
        # capture, OrtValue ownership) are about a fifth of a 1-row call between requests, and
        # hold by construction here (the signature is checked above; X is always a float32 array).
        self.run = getattr(self.session, "_sess", self.session).run
        self.one_row = OneRowLane(self.session, self.card)

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
        answer = self.one_row.predict(X) if len(X) == 1 else None
        labels, probabilities = answer or self.run(self.outputs, {self.card.input_name: X}, None)
        return Prediction(labels=labels, probabilities=probabilities, positive=probabilities[:, self.positive_column])
