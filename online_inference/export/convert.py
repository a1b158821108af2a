"""Convert the trained pipeline to ONNX (one float32 ``[N, features]`` input, no ZipMap): folded
into one linear classifier (:mod:`fold`) when the pipeline is linear, skl2onnx's conversion
otherwise. Either graph must answer like scikit-learn on the training rows and on random valid
rows, and give a row the same answer alone and in any batch (:mod:`checks`); the model card goes
into the file's metadata."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.pipeline import Pipeline

from online_inference.card import CARD_METADATA_KEY, Contributions, Feature, ModelCard, Range
from online_inference.export.checks import check_graph
from online_inference.export.contributions import CONTRIBUTION_OUTPUT, EXPLAIN_FLAG, LinearContributions
from online_inference.export.data import Dataset
from online_inference.export.fold import CannotFold, fold_pipeline
from online_inference.export.stumps import NotAdditive, add_stump_contributions
from online_inference.export.spec import ModelSpec
from online_inference.export.train import TrainedModel

INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITY_OUTPUT = "probabilities"
TARGET_OPSET = 17
LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "numpy")
LINEAR_WHY = ("exact Shapley values of the folded linear score, with the training rows as background: "
              "a numeric or binary feature's weight times its distance from its training mean; "
              "a categorical feature's code weight minus that weight's training average")
STUMPS_WHY = ("exact Shapley values of gradient-boosted stumps (one split each, so additive per feature), "
              "with the training rows as background: per feature, the sum over its trees of the leaf a row "
              "reaches minus that tree's training average")
log = logging.getLogger(__name__)


def linear_terms(terms: LinearContributions | None, column: int, codes: dict[int, str] | None) -> dict[str, Any]:
    """A feature's weight (or code weights) and training mean, for the card."""
    if terms is None:
        return {}
    mean = float(terms.means[column])
    if column in terms.code_weights:
        return {"code_weights": {code: float(terms.code_weights[column].get(float(code), 0.0)) for code in codes or ()}, "mean": mean}
    return {"weight": float(terms.weights[column]), "mean": mean}


def describe_features(spec: ModelSpec, data: Dataset, terms: LinearContributions | None = None) -> list[Feature]:
    """Card entries: the spec plus the training range and a typical value measured on the data
    (and a linear model's terms)."""
    features = []
    for column, feature in enumerate(spec.features):
        values = data.X[:, column]
        if feature.codes:
            codes, counts = np.unique(values, return_counts=True)
            example = float(codes[np.argmax(counts)])
        else:
            example = float(np.round(np.median(values), 1))
        low, high = feature.low_high
        features.append(
            Feature(
                name=feature.name,
                kind=feature.kind,
                description=feature.meaning,
                unit=feature.unit,
                codes=feature.codes,
                bounds=Range(min=low, max=high),
                training=Range(min=float(values.min()), max=float(values.max())),
                example=example,
                **linear_terms(terms, column, feature.codes),
            )
        )
    return features


def build_card(spec: ModelSpec, model: TrainedModel, data: Dataset, created: str, served: Served) -> ModelCard:
    classes = [int(c) for c in model.pipeline.classes_]
    return ModelCard(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        target=spec.target,
        classes=classes,
        class_labels=spec.classes,
        positive_class=classes[-1],  # scikit-learn's: the larger label
        input_name=INPUT_NAME,
        label_output=LABEL_OUTPUT,
        probability_output=PROBABILITY_OUTPUT,
        features=describe_features(spec, data, served.terms),
        classifier=type(model.pipeline[-1]).__name__,
        classifier_params=model.classifier_params,
        metrics=model.metrics,
        training_data={"source": data.source, "sha256": data.sha256, "rows": int(len(data.y))},
        libraries={name: version(name) for name in LIBRARIES},
        created=created,
        graph=served.kind,
        compared=model.compared,
        contributions=served.contributions,
    )


@dataclass(frozen=True)
class Served:
    """The graph the export serves, its kind, and its contributions (how, or why none)."""

    graph: onnx.ModelProto
    kind: Literal["folded", "converted"]
    contributions: Contributions
    terms: LinearContributions | None = None  # a linear model's, for the card


def served_graph(pipeline: Pipeline, X_train: np.ndarray) -> Served:
    """The graph to serve: the pipeline folded into one linear classifier with its contributions
    when it can be, skl2onnx's conversion otherwise."""
    converted = convert_with_skl2onnx(pipeline, X_train.shape[1])
    try:
        folded, terms = fold_pipeline(pipeline, converted, X_train)
    except CannotFold as reason:
        log.info("serving skl2onnx's conversion: %s", reason)
        return converted_graph(pipeline, converted, X_train)
    return Served(folded, "folded", Contributions("linear", LINEAR_WHY, CONTRIBUTION_OUTPUT, terms.baseline, EXPLAIN_FLAG), terms)


def converted_graph(pipeline: Pipeline, converted: onnx.ModelProto, X_train: np.ndarray) -> Served:
    """skl2onnx's conversion, with contributions if the model is additive per feature (stumps)."""
    try:
        graph, baseline = add_stump_contributions(pipeline, converted, X_train)
    except NotAdditive as reason:
        return Served(converted, "converted", Contributions("none", f"no exact per-feature contributions: {reason}"))
    return Served(graph, "converted", Contributions("additive trees", STUMPS_WHY, CONTRIBUTION_OUTPUT, baseline, EXPLAIN_FLAG))


def finish(onx: onnx.ModelProto, card: ModelCard) -> onnx.ModelProto:
    """The graph with its card in the metadata, checked by ONNX."""
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


def export_model(spec: ModelSpec, model: TrainedModel, data: Dataset, path: Path) -> ModelCard:
    """Write the ONNX file with its card; return the card (with the file's sha256)."""
    served = served_graph(model.pipeline, data.X)
    check_graph(served, model.pipeline, spec, data)
    card = build_card(spec, model, data, creation_date(), served)
    payload = finish(served.graph, card).SerializeToString()
    write_atomically(payload, path)
    return dataclasses.replace(card, sha256=hashlib.sha256(payload).hexdigest())
