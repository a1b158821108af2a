"""Convert the trained pipeline to ONNX (one float32 ``[N, features]`` input, no ZipMap): folded
into one linear classifier (:mod:`fold`) when the pipeline is linear, skl2onnx's conversion
otherwise. Either graph must answer like scikit-learn on the training rows and on random valid
rows, and give a row the same answer alone and in any batch; the model card goes into the file's
metadata."""

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
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.pipeline import Pipeline

from online_inference.app.model.session import session_options
from online_inference.card import CARD_METADATA_KEY, Contributions, Feature, ModelCard, Range
from online_inference.export.contributions import CONTRIBUTION_OUTPUT, EXPLAIN_FLAG, LinearContributions
from online_inference.export.data import Dataset
from online_inference.export.fold import CannotFold, fold_pipeline
from online_inference.export.shapley import linear_shapley
from online_inference.export.stumps import NotAdditive, add_stump_contributions, tree_shapley
from online_inference.export.spec import ModelSpec
from online_inference.export.train import SEED, TrainedModel

INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITY_OUTPUT = "probabilities"
TARGET_OPSET = 17
LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "numpy")
CHECK_ROWS = 5000  # random valid rows on which the graph must answer like scikit-learn
PROBABILITY_TOLERANCE = 1e-5
CONTRIBUTION_TOLERANCE = 1e-5  # logit units: float32 rounding of values of a few units
# Relative: two float32 roundings of what the graph computes a contribution from (contribution_allowance).
FLOAT32_ROUNDING = 2.0 ** -23
# ONNX Runtime's float32 Sigmoid is an approximation good to 1.7e-7 absolute (measured over [-20, 20]),
# so the logit of a served probability p is only good to about that over p (1 - p): 0.3 logit at p = 1e-6.
SIGMOID_ERROR = 2e-7
LINEAR_WHY = ("exact Shapley values of the folded linear score, with the training rows as background: "
              "a numeric or binary feature's weight times its distance from its training mean; "
              "a categorical feature's code weight minus that weight's training average")
STUMPS_WHY = ("exact Shapley values of gradient-boosted stumps (one split each, so additive per feature), "
              "with the training rows as background: per feature, the sum over its trees of the leaf a row "
              "reaches minus that tree's training average")
SHAPLEY = {"linear": linear_shapley, "additive trees": tree_shapley}  # the reference from scikit-learn, per method
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


def check_graph(served: Served, pipeline: Pipeline, spec: ModelSpec, data: Dataset) -> None:
    """ValueError unless the graph answers like scikit-learn on the training rows and on random
    valid rows (its contributions too), and gives each of them the same answer alone and in batches."""
    rows = np.vstack([data.X, random_valid_rows(spec, CHECK_ROWS)]).astype(np.float32)
    check_same_answers(served.graph, pipeline, rows, served.terms)
    reference = SHAPLEY.get(served.contributions.method)
    if reference is not None:
        check_contributions(served, *reference(pipeline, rows.astype(np.float64), data.X), rows)
    check_batch_invariant(served.graph, rows)


def check_contributions(served: Served, expected: np.ndarray, baseline: float, X: np.ndarray) -> None:
    """The graph's contributions must be the reference's (computed from scikit-learn) to float32
    rounding, and add up, with the card's baseline, to the logit of the graph's probability as far
    as its Sigmoid's accuracy tells it (:func:`logit_gap`)."""
    _, probabilities, contributions = run_graph(served.graph, X)
    delta = np.abs(contributions - expected)
    card_baseline = served.contributions.baseline
    assert card_baseline is not None
    allowance = contribution_allowance(served, X, expected)
    rounding = (allowance - CONTRIBUTION_TOLERANCE).sum(axis=1)  # what float32 does to their sum
    if served.terms is not None:
        rounding = rounding + score_rounding(served.terms, X)  # and to the score the probability is of
    gap, allowed = logit_gap(card_baseline, contributions, probabilities[:, -1], rounding)
    over = delta > allowance
    if np.any(over) or abs(card_baseline - baseline) > CONTRIBUTION_TOLERANCE or np.any(gap > allowed):
        raise ValueError(f"the graph's contributions differ from scikit-learn's Shapley values on {len(X)} rows: "
                         f"max |Δ| {float(delta.max()):.2g}, {int(over.sum())} past float32's rounding, "
                         f"baseline {card_baseline} vs {baseline}, "
                         f"{int(np.sum(gap > allowed))} rows whose contributions do not add up to their logit")


def contribution_allowance(served: Served, X: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """How far each of the graph's float32 contributions may be from the reference: the
    tolerance, the contribution's own rounding, and, for a raw feature of a linear model (weight ×
    (value − mean)), the rounding of the value and the mean before the subtraction: at float32's
    precision a feature bounded in the thousands is a few 1e-4 apart from its true value, 1e-5
    of a logit once weighed."""
    allowed = CONTRIBUTION_TOLERANCE + FLOAT32_ROUNDING * np.abs(expected)
    terms = served.terms
    if terms is not None:
        means = np.where(terms.is_coded, 0.0, terms.means)
        allowed = allowed + FLOAT32_ROUNDING * np.abs(terms.weights) * (np.abs(X.astype(np.float64)) + np.abs(means))
    return allowed  # type: ignore[no-any-return]


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


def session_of(onx: onnx.ModelProto) -> ort.InferenceSession:
    """An ONNX Runtime session of the graph, with the service's options."""
    return ort.InferenceSession(onx.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])


def logit_gap(baseline: float, contributions: np.ndarray, positive: np.ndarray,
              rounding: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per row, how far baseline + Σ contributions is from the logit of the served probability,
    and how far it may be: the contributions' tolerance, plus what the served probability's own
    errors do to its logit. That probability is held to PROBABILITY_TOLERANCE of scikit-learn's,
    and its Sigmoid adds SIGMOID_ERROR; over p (1 - p), the slope of the Sigmoid, that is a
    logit's. ``rounding``: what float32 does to the score and to the contributions' sum, in logit
    units, where it is known (the export's check: :func:`score_rounding`; a feature bounded in the
    thousands makes it 1e-5)."""
    p = positive.astype(np.float64)
    with np.errstate(divide="ignore"):
        logit = np.log(p) - np.log1p(-p)
        allowed = CONTRIBUTION_TOLERANCE + rounding + (PROBABILITY_TOLERANCE + SIGMOID_ERROR) / (p * (1 - p))
    return np.abs(baseline + contributions.astype(np.float64).sum(axis=1) - logit), allowed


def feeds(onx: onnx.ModelProto, X: np.ndarray) -> dict[str, np.ndarray]:
    """The rows ``X``, and the flag that turns the contributions on if the graph has them."""
    has_flag = any(i.name == EXPLAIN_FLAG for i in onx.graph.input)
    return {INPUT_NAME: X, **({EXPLAIN_FLAG: np.array(True)} if has_flag else {})}


def run_graph(onx: onnx.ModelProto, X: np.ndarray) -> list[np.ndarray]:
    """(labels, probabilities[, contributions]) of the graph for the float32 rows ``X``, by ONNX Runtime."""
    return session_of(onx).run(None, feeds(onx, X))  # type: ignore[no-any-return]


def random_valid_rows(spec: ModelSpec, count: int) -> np.ndarray:
    """Rows the service accepts: each code of each coded feature, other values across their bounds."""
    rng = np.random.default_rng(SEED)
    columns = [rng.choice(sorted(f.codes), count) if f.codes else rng.uniform(*f.low_high, count) for f in spec.features]
    return np.column_stack(columns)


def check_same_answers(onx: onnx.ModelProto, pipeline: Pipeline, X: np.ndarray,
                       terms: LinearContributions | None = None) -> None:
    """The graph's labels and probabilities for the float32 rows ``X`` must be scikit-learn's (a
    label may differ only where scikit-learn's probability is within the tolerance of a tie), to
    PROBABILITY_TOLERANCE and, for a folded linear graph (``terms``), what float32 does to its
    score (:func:`score_rounding`)."""
    labels, probabilities = run_graph(onx, X)[:2]
    expected = pipeline.predict_proba(X.astype(np.float64))
    expected_labels = pipeline.classes_[np.argmax(expected, axis=1)]
    slope = expected[:, 1] * (1 - expected[:, 1])  # of the Sigmoid: a logit's error, in probability
    allowed = PROBABILITY_TOLERANCE + (0.0 if terms is None else slope * score_rounding(terms, X))
    near_tie = np.abs(expected[:, 1] - 0.5) <= allowed
    differing = int(np.sum((labels != expected_labels) & ~near_tie))
    delta = np.abs(probabilities - expected).max(axis=1)
    if differing or np.any(delta > allowed):
        raise ValueError(f"the graph answers unlike scikit-learn on {len(X)} rows: "
                         f"{differing} labels differ, max |Δp| {float(delta.max()):.2g}, "
                         f"{int(np.sum(delta > allowed))} rows past the tolerance and float32's rounding")


def score_rounding(terms: LinearContributions, X: np.ndarray) -> np.ndarray:
    """:func:`float32_score_error` of the export's linear terms."""
    return float32_score_error(terms.weights, np.where(terms.is_coded, 0.0, terms.means), terms.means[terms.is_coded],
                               terms.baseline, X)


def float32_score_error(weights: np.ndarray, raw_means: np.ndarray, code_means: np.ndarray, baseline: float,
                        X: np.ndarray) -> np.ndarray:
    """Per row, how far a folded graph's float32 score may be from its exact value: summing n
    terms in float32 errs by at most (n + 1) units of float32's rounding of their magnitudes
    (recursive summation); the terms are each raw feature's weight × value, and the intercept,
    which folds the weight × mean of every feature (bounded here by those, the coded features'
    mean weights and the baseline). Only features bounded in the thousands make it matter (1e-5
    of a probability)."""
    raw = np.abs(X.astype(np.float64)) + np.abs(raw_means)
    magnitude = raw @ np.abs(weights) + abs(baseline) + np.abs(code_means).sum()
    return (len(weights) + 1) * 2.0 ** -24 * magnitude  # type: ignore[no-any-return]


def check_batch_invariant(onx: onnx.ModelProto, X: np.ndarray) -> None:
    """Each row must get the same label and the same bits of every other output alone as in batches of
    random sizes from 2 to 64, at random places: the server shares a model call between requests."""
    session = session_of(onx)
    alone = [np.concatenate(parts) for parts in zip(*(session.run(None, feeds(onx, X[i:i + 1])) for i in range(len(X))))]
    batched = [np.empty_like(output) for output in alone]
    rng = np.random.default_rng(SEED)
    order, start = rng.permutation(len(X)), 0
    while start < len(X):
        batch = order[start:start + int(rng.integers(2, 65))]
        for output, answer in zip(batched, session.run(None, feeds(onx, X[batch]))):
            output[batch] = answer
        start += len(batch)
    differing = int(np.sum(np.any([(b != a).reshape(len(X), -1).any(axis=1) for b, a in zip(batched, alone)], axis=0)))
    if differing:
        raise ValueError(f"the graph answers {differing} of {len(X)} rows differently alone and in a batch")


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
