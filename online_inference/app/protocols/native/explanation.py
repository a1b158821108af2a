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
    reads back as the same float32, as ``/predict`` writes its probabilities). The order of each
    row's contributions is sorted for the whole batch at once (numpy), and each reason's words but
    its figures are written once per request (:class:`Reasons`)."""
    card, contributions = served.card, prediction.contributions
    assert contributions is not None  # the data plane computed them: the request asked
    warnings = served.rules.warnings_by_row(X)
    names, baseline, words = card.feature_names, card.contributions.baseline, Reasons(card)
    largest = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :REASONS]  # ties: the card's order
    return [{
        card.target: label,
        "probability": positive,
        "warnings": warnings.get(row, []),
        "baseline": baseline,
        "contributions": dict(zip(names, contributions[row])),
        "reasons": words.of(values, row_contributions, order),
    } for row, (label, positive, values, row_contributions, order) in enumerate(zip(
        prediction.labels.tolist(), prediction.positive, X.tolist(), contributions.tolist(), largest.tolist()))]


class Reasons:
    """A row's largest contributions in the card's words: ``<meaning>: <value with unit, or code
    label> raises|lowers the probability of <target> <class> (+1.15 logit)``."""

    def __init__(self, card: ModelCard):
        outcome = f"{card.target} {card.class_name(card.positive_class)}"
        self.features = card.features
        self.raises, self.lowers = f" raises the probability of {outcome} (", f" lowers the probability of {outcome} ("

    def of(self, values: list[float], contributions: list[float], order: list[int]) -> list[str]:
        """The reasons of a row's ``order`` (its largest contributions first), none that is zero."""
        return [self.reason(self.features[j], values[j], contributions[j]) for j in order if contributions[j]]

    def reason(self, feature: Feature, value: float, contribution: float) -> str:
        direction = self.raises if contribution > 0 else self.lowers
        return f"{finding(feature, value)}{direction}{contribution:+.2f} logit)"


def finding(feature: Feature, value: float) -> str:
    """The feature's meaning and its value, with its unit or its code's label."""
    if feature.codes:
        label = feature.codes[int(value)]
        shown = f"{label} ({int(value)})" if label != str(int(value)) else label
        return f"{feature.description}: {shown}"
    unit = f" {feature.unit}" if feature.unit else ""
    return f"{feature.description}: {value:g}{unit}"
