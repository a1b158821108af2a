"""Convert the trained pipeline to ONNX (one float32 ``[N, 13]`` input, no ZipMap), fold it into
one linear classifier (:mod:`fold`) checked against skl2onnx's conversion and for answers that do
not depend on the batch, and embed the model card in the file's metadata."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.pipeline import Pipeline

from online_inference import __version__
from online_inference.card import CARD_METADATA_KEY, Feature, ModelCard, Range
from online_inference.export.data import Dataset
from online_inference.export.features import FEATURES, TARGET
from online_inference.export.fold import fold_pipeline
from online_inference.export.train import SEED, TrainedModel

MODEL_NAME = "heart-disease-classifier"
INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITY_OUTPUT = "probabilities"
TARGET_OPSET = 17
LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "numpy")
CHECK_ROWS = 5000  # random valid rows on which the folded graph must answer like skl2onnx's
PROBABILITY_TOLERANCE = 1e-5


def describe_features(data: Dataset) -> list[Feature]:
    """Card entries: the spec plus the training range and a typical value measured on the data."""
    features = []
    for column, spec in enumerate(FEATURES):
        values = data.X[:, column]
        if spec.codes:
            codes, counts = np.unique(values, return_counts=True)
            example = float(codes[np.argmax(counts)])
        else:
            example = float(np.round(np.median(values), 1))
        low, high = spec.bounds
        features.append(
            Feature(
                name=spec.name,
                kind=spec.kind,  # type: ignore[arg-type]
                description=spec.description,
                unit=spec.unit,
                codes=spec.codes,
                bounds=Range(min=low, max=high),
                training=Range(min=float(values.min()), max=float(values.max())),
                example=example,
            )
        )
    return features


def build_card(model: TrainedModel, data: Dataset, created: str) -> ModelCard:
    return ModelCard(
        name=MODEL_NAME,
        version=__version__,
        description="Probability of heart disease (UCI Cleveland, 'condition' = 1) from 13 clinical features.",
        target=TARGET,
        classes=[int(c) for c in model.pipeline.classes_],
        positive_class=1,
        input_name=INPUT_NAME,
        label_output=LABEL_OUTPUT,
        probability_output=PROBABILITY_OUTPUT,
        features=describe_features(data),
        classifier=type(model.pipeline[-1]).__name__,
        classifier_params=model.classifier_params,
        metrics=model.metrics,
        training_data={"source": data.source, "sha256": data.sha256, "rows": int(len(data.y))},
        libraries={name: version(name) for name in LIBRARIES},
        created=created,
    )


def convert_pipeline(model: TrainedModel, card: ModelCard, data: Dataset) -> onnx.ModelProto:
    """skl2onnx's conversion, folded; ValueError if the two answer differently on ``data`` or on
    random valid rows."""
    reference = convert_with_skl2onnx(model.pipeline, len(card.features))
    onx = fold_pipeline(model.pipeline, reference)
    rows = np.vstack([data.X, random_valid_rows(CHECK_ROWS)]).astype(np.float32)
    check_same_answers(onx, reference, rows)
    check_batch_invariant(onx, rows)
    onx.doc_string = card.description
    onx.model_version = 1
    onnx.helper.set_model_props(onx, {CARD_METADATA_KEY: card.to_json()})
    onnx.checker.check_model(onx)
    return onx


def convert_with_skl2onnx(pipeline: Pipeline, width: int) -> onnx.ModelProto:
    """skl2onnx's step-by-step conversion: one float ``[N, width]`` input, plain tensor outputs."""
    reference = to_onnx(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, width]))],
        options={id(pipeline): {"zipmap": False}},
        target_opset=TARGET_OPSET,
        final_types=None,
    )
    rename_outputs(reference, {"output_label": LABEL_OUTPUT, "output_probability": PROBABILITY_OUTPUT})
    return reference


def run_graph(onx: onnx.ModelProto, X: np.ndarray) -> list[np.ndarray]:
    """(labels, probabilities) of the graph for the float32 rows ``X``, by ONNX Runtime."""
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: X})  # type: ignore[no-any-return]


def random_valid_rows(count: int) -> np.ndarray:
    """Rows the service accepts: each code of each coded feature, other values across their bounds."""
    rng = np.random.default_rng(SEED)
    columns = [rng.choice(sorted(spec.codes), count) if spec.codes else rng.uniform(*spec.bounds, count) for spec in FEATURES]
    return np.column_stack(columns)


def check_same_answers(onx: onnx.ModelProto, reference: onnx.ModelProto, X: np.ndarray) -> None:
    (labels, probabilities), (expected_labels, expected_probabilities) = run_graph(onx, X), run_graph(reference, X)
    differing = int(np.sum(labels != expected_labels))
    delta = float(np.abs(probabilities - expected_probabilities).max())
    if differing or delta > PROBABILITY_TOLERANCE:
        raise ValueError(f"the folded graph answers unlike skl2onnx's conversion on {len(X)} rows: "
                         f"{differing} labels differ, max |Δp| {delta:.2g}")


def check_batch_invariant(onx: onnx.ModelProto, X: np.ndarray) -> None:
    """Each row must get the same label and the same probability bits alone as in batches of
    random sizes from 2 to 64, at random places: the server shares a model call between requests."""
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    alone = [np.concatenate(parts) for parts in zip(*(session.run(None, {INPUT_NAME: X[i:i + 1]}) for i in range(len(X))))]
    batched = [np.empty_like(output) for output in alone]
    rng = np.random.default_rng(SEED)
    order, start = rng.permutation(len(X)), 0
    while start < len(X):
        batch = order[start:start + int(rng.integers(2, 65))]
        for output, answer in zip(batched, session.run(None, {INPUT_NAME: X[batch]})):
            output[batch] = answer
        start += len(batch)
    differing = int(np.sum((batched[0] != alone[0]) | np.any(batched[1] != alone[1], axis=1)))
    if differing:
        raise ValueError(f"the folded graph answers {differing} of {len(X)} rows differently alone and in a batch")


def rename_outputs(onx: onnx.ModelProto, names: dict[str, str]) -> None:
    """Give the graph outputs stable names (skl2onnx's defaults are an implementation detail)."""
    for output in onx.graph.output:
        if output.name in names:
            old, new = output.name, names[output.name]
            output.name = new
            for node in onx.graph.node:
                node.output[:] = [new if o == old else o for o in node.output]


def write_atomically(payload: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(payload)
    os.chmod(tmp.name, 0o644)  # NamedTemporaryFile creates 0600: the model must be world-readable
    os.replace(tmp.name, path)


def creation_date() -> str:
    """Today, or ``SOURCE_DATE_EPOCH`` when set, so that a rebuild can be byte-identical."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch else dt.datetime.now(dt.timezone.utc)
    return moment.date().isoformat()


def export_model(model: TrainedModel, data: Dataset, path: Path) -> ModelCard:
    """Write the ONNX file with its card; return the card (with the file's sha256)."""
    created = creation_date()
    card = build_card(model, data, created)
    payload = convert_pipeline(model, card, data).SerializeToString()
    write_atomically(payload, path)
    return dataclasses.replace(card, sha256=hashlib.sha256(payload).hexdigest())
