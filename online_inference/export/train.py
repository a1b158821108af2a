"""Train the scikit-learn pipeline for a spec and choose its classifier by stratified 5-fold CV
ROC AUC, among logistic regressions and gradient-boosted trees.

Within each family the best mean ROC AUC wins (a tie goes to the simpler: stronger
regularisation, shallower trees). Trees are chosen over the best logistic regression only when
they beat it by more than one standard error of its mean: the linear model folds into one small,
fast linear classifier (:mod:`fold`), the trees are served as skl2onnx converts them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from online_inference.card import Candidate, Metrics
from online_inference.export.data import Dataset
from online_inference.export.spec import ModelSpec

SEED = 42
CV_FOLDS = 5

Params = dict[str, Any]


def logistic_regression(C: float) -> tuple[ClassifierMixin, Params]:
    params: Params = {"C": C, "penalty": "l2", "solver": "lbfgs", "max_iter": 1000}
    return LogisticRegression(C=C, max_iter=1000, random_state=SEED), params


def gradient_boosting(max_depth: int) -> tuple[ClassifierMixin, Params]:
    params: Params = {"n_estimators": 100, "learning_rate": 0.1, "max_depth": max_depth}
    return GradientBoostingClassifier(**params, random_state=SEED), params


# Each family from its simplest candidate to its most complex; the linear family first.
LINEAR: tuple[Callable[[], tuple[ClassifierMixin, Params]], ...] = tuple(
    lambda C=C: logistic_regression(C) for C in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0))
TREES: tuple[Callable[[], tuple[ClassifierMixin, Params]], ...] = tuple(
    lambda depth=depth: gradient_boosting(depth) for depth in (1, 2, 3))
CANDIDATES = LINEAR + TREES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    classifier_params: Params
    metrics: Metrics
    compared: list[Candidate]


def build_pipeline(spec: ModelSpec, classifier: ClassifierMixin) -> Pipeline:
    """Scale numeric columns, one-hot the categorical codes, pass binary ones; columns by index
    so that skl2onnx gives one float32 ``[N, features]`` input."""
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), spec.indices_of("numeric")),
            (
                "categorical",
                OneHotEncoder(
                    categories=[sorted(f.codes or ()) for f in spec.features if f.kind == "categorical"],
                    handle_unknown="ignore",
                ),
                spec.indices_of("categorical"),
            ),
            ("binary", "passthrough", spec.indices_of("binary")),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def score(pipeline: Pipeline, data: Dataset) -> Metrics:
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
    scores = cross_validate(pipeline, data.X, data.y, cv=folds, scoring=("roc_auc", "accuracy"))
    return Metrics(
        cv_folds=CV_FOLDS,
        roc_auc_mean=round(float(np.mean(scores["test_roc_auc"])), 6),
        roc_auc_std=round(float(np.std(scores["test_roc_auc"])), 6),
        accuracy_mean=round(float(np.mean(scores["test_accuracy"])), 6),
        accuracy_std=round(float(np.std(scores["test_accuracy"])), 6),
    )


def best_of(compared: list[Candidate], start: int, stop: int) -> int:
    """The index of the best mean ROC AUC among ``compared[start:stop]`` (a tie: the earlier)."""
    return max(range(start, stop), key=lambda i: (compared[i].metrics.roc_auc_mean, -i))


def choose(compared: list[Candidate]) -> int:
    """The best logistic regression, unless the best trees beat it by more than its standard error."""
    linear, trees = best_of(compared, 0, len(LINEAR)), best_of(compared, len(LINEAR), len(compared))
    metrics = compared[linear].metrics
    margin = metrics.roc_auc_std / math.sqrt(metrics.cv_folds)
    return trees if compared[trees].metrics.roc_auc_mean > metrics.roc_auc_mean + margin else linear


def train(spec: ModelSpec, data: Dataset) -> TrainedModel:
    """Score every candidate, refit the chosen one on all rows."""
    compared = []
    for make in CANDIDATES:
        classifier, params = make()
        metrics = score(build_pipeline(spec, classifier), data)
        log.info("candidate %s(%s): ROC AUC %.4f ± %.4f, accuracy %.4f ± %.4f", type(classifier).__name__, params,
                 metrics.roc_auc_mean, metrics.roc_auc_std, metrics.accuracy_mean, metrics.accuracy_std)
        compared.append(Candidate(classifier=type(classifier).__name__, params=params, metrics=metrics))
    chosen = choose(compared)
    classifier, params = CANDIDATES[chosen]()
    pipeline = build_pipeline(spec, classifier).fit(data.X, data.y)
    return TrainedModel(pipeline=pipeline, classifier_params=params, metrics=compared[chosen].metrics, compared=compared)
