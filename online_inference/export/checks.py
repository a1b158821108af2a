"""The exported graph held to scikit-learn, before it is written: it must answer like the pipeline
on the training rows and on random valid rows (labels, probabilities), its contributions must be
the reference's Shapley values and add up to the logit of its probability, each to a tolerance
plus what float32 does to the terms the graph computes them from; and a row must get the same
bits alone and in any batch (the server shares a model call between requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
from sklearn.pipeline import Pipeline

from online_inference.app.model.session import session_options
from online_inference.export.contributions import EXPLAIN_FLAG, LinearContributions
from online_inference.export.data import Dataset
from online_inference.export.shapley import linear_shapley
from online_inference.export.spec import ModelSpec
from online_inference.export.stumps import tree_shapley
from online_inference.export.train import SEED

if TYPE_CHECKING:
    from online_inference.export.convert import Served

CHECK_ROWS = 5000  # random valid rows on which the graph must answer like scikit-learn
PROBABILITY_TOLERANCE = 1e-5
CONTRIBUTION_TOLERANCE = 1e-5  # logit units: float32 rounding of values of a few units
# Relative: two float32 roundings of what the graph computes a contribution from (contribution_allowance).
FLOAT32_ROUNDING = 2.0 ** -23
# ONNX Runtime's float32 Sigmoid is an approximation good to 1.7e-7 absolute (measured over [-20, 20]),
# so the logit of a served probability p is only good to about that over p (1 - p): 0.3 logit at p = 1e-6.
SIGMOID_ERROR = 2e-7
SHAPLEY = {"linear": linear_shapley, "additive trees": tree_shapley}  # the reference from scikit-learn, per method


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
    """The rows ``X`` (the graph's one other input), and the flag that turns the contributions on
    if the graph has them."""
    names = [i.name for i in onx.graph.input]
    rows = next(name for name in names if name != EXPLAIN_FLAG)
    return {rows: X, **({EXPLAIN_FLAG: np.array(True)} if EXPLAIN_FLAG in names else {})}


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
