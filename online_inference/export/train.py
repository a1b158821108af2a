"""Train the scikit-learn pipeline for a spec and choose its classifier by stratified 5-fold CV
ROC AUC, among logistic regressions and gradient-boosted trees.

Within each family the best mean ROC AUC wins (a tie goes to the simpler: stronger
regularisation, shallower trees). Trees are chosen over the best logistic regression only when
they beat it by more than one standard error of its mean: the linear model folds into one small,
fast linear classifier (:mod:`fold`), the trees are served as skl2onnx converts them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from online_inference.card import Candidate, CrossValidation
from online_inference.export.data import Dataset
from online_inference.export.progress import SILENT, Progress
from online_inference.export.spec import ModelSpec

SEED = 42
CV_FOLDS = 5
SCORES = ("roc_auc", "accuracy")  # scikit-learn's scorers, per fold

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

@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    classifier_params: Params
    metrics: CrossValidation
    compared: list[Candidate]


def build_pipeline(spec: ModelSpec, classifier: ClassifierMixin) -> Pipeline:
    """Scale numeric columns, one-hot the categorical codes, pass binary ones; columns by index
    so that skl2onnx gives one float32 ``[N, features]`` input. A kind the spec has no feature of
    has no step (scikit-learn would leave it unfitted)."""
    steps = {
        "numeric": StandardScaler(),
        "categorical": OneHotEncoder(
            categories=[sorted(f.codes or ()) for f in spec.features if f.kind == "categorical"], handle_unknown="ignore"),
        "binary": "passthrough",
    }
    preprocess = ColumnTransformer(
        [(kind, step, spec.indices_of(kind)) for kind, step in steps.items() if spec.indices_of(kind)])
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def score(pipeline: Pipeline, data: Dataset, fold_done: Callable[[], None] = lambda: None) -> CrossValidation:
    """Stratified k-fold CV ROC AUC and accuracy (what ``cross_validate`` computes), one fold at a
    time: ``fold_done`` is called after each."""
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
    scores: dict[str, list[float]] = {name: [] for name in SCORES}
    for train_rows, test_rows in folds.split(data.X, data.y):
        fitted = clone(pipeline).fit(data.X[train_rows], data.y[train_rows])
        for name in SCORES:
            scores[name].append(get_scorer(name)(fitted, data.X[test_rows], data.y[test_rows]))
        fold_done()
    return CrossValidation(
        cv_folds=CV_FOLDS,
        roc_auc_mean=round(float(np.mean(scores["roc_auc"])), 6),
        roc_auc_std=round(float(np.std(scores["roc_auc"])), 6),
        accuracy_mean=round(float(np.mean(scores["accuracy"])), 6),
        accuracy_std=round(float(np.std(scores["accuracy"])), 6),
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


def train(spec: ModelSpec, data: Dataset, progress: Progress = SILENT) -> TrainedModel:
    """Score every candidate (telling ``progress`` fold by fold), refit the chosen one on all rows."""
    compared = []
    for make in CANDIDATES:
        classifier, params = make()
        progress.started(type(classifier).__name__, params)
        metrics = score(build_pipeline(spec, classifier), data, progress.fold_done)
        compared.append(Candidate(classifier=type(classifier).__name__, params=params, metrics=metrics))
        progress.scored(compared[-1])
    chosen = choose(compared)
    classifier, params = CANDIDATES[chosen]()
    pipeline = build_pipeline(spec, classifier).fit(data.X, data.y)
    return TrainedModel(pipeline=pipeline, classifier_params=params, metrics=compared[chosen].metrics, compared=compared)
