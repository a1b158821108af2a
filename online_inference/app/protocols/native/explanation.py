"""The ``/explain`` answer: each row's prediction as ``/predict`` gives it, plus its contributions
(feature → logit units of the positive class, in the card's feature order), the baseline they add
to, and the row's largest reasons in words from the card (the feature's meaning, its value with
its unit or its code's label, and which way it moves the probability)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from online_inference.app.dataplane.plane import Served
from online_inference.app.model.session import Prediction
from online_inference.card import Feature, ModelCard

PATH = "/explain"
REASONS = 3  # the largest contributions a row's reasons name


def explanation_bytes(served: Served, X: np.ndarray, prediction: Prediction) -> bytes:
    card = served.card
    answer = {"predictions": explanation_rows(served, X, prediction), "model": {"name": card.name, "version": card.version}}
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def explanation_rows(served: Served, X: np.ndarray, prediction: Prediction) -> list[dict[str, Any]]:
    """One object per row, in request order (float32 values written as the shortest decimal that
    reads back as the same float32, as ``/predict`` writes its probabilities)."""
    card, contributions = served.card, prediction.contributions
    assert contributions is not None  # the data plane computed them: the request asked
    warnings = served.rules.warnings_by_row(X)
    names = card.feature_names
    return [{
        card.target: int(label),
        "probability": positive,
        "warnings": warnings.get(row, []),
        "baseline": card.contributions.baseline,
        "contributions": dict(zip(names, contributions[row])),
        "reasons": reasons(card, X[row], contributions[row]),
    } for row, (label, positive) in enumerate(zip(prediction.labels.tolist(), prediction.positive))]


def reasons(card: ModelCard, values: np.ndarray, contributions: np.ndarray) -> list[str]:
    """The row's ``REASONS`` largest contributions (by size, none that is zero), in words."""
    order = sorted(range(len(contributions)), key=lambda j: -abs(float(contributions[j])))
    return [reason(card, card.features[j], float(values[j]), float(contributions[j])) for j in order[:REASONS] if contributions[j]]


def reason(card: ModelCard, feature: Feature, value: float, contribution: float) -> str:
    """``<meaning>: <value with unit, or code label> raises|lowers the probability of <target> <class> (+1.15 logit)``."""
    direction = "raises" if contribution > 0 else "lowers"
    outcome = f"{card.target} {card.class_name(card.positive_class)}"
    return f"{finding(feature, value)} {direction} the probability of {outcome} ({contribution:+.2f} logit)"


def finding(feature: Feature, value: float) -> str:
    """The feature's meaning and its value, with its unit or its code's label."""
    if feature.codes:
        label = feature.codes[int(value)]
        shown = f"{label} ({int(value)})" if label != str(int(value)) else label
        return f"{feature.description}: {shown}"
    unit = f" {feature.unit}" if feature.unit else ""
    return f"{feature.description}: {value:g}{unit}"
