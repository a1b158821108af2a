"""Train the scikit-learn pipeline and choose its classifier by stratified 5-fold CV ROC AUC."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from online_inference.card import Metrics
from online_inference.export.data import Dataset
from online_inference.export.features import FEATURES, indices_of

SEED = 42
CV_FOLDS = 5
# Linear candidates only: their ONNX form is a few KB and matches scikit-learn to float32
# precision (tree thresholds compared in float32 could flip on boundary values).
CANDIDATE_C = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    classifier_params: dict[str, float | int | str | bool | None]
    metrics: Metrics


def build_pipeline(C: float) -> Pipeline:
    """Scale numeric columns, one-hot the categorical codes, pass binary ones; columns by index
    so that skl2onnx gives one float32 ``[N, 13]`` input."""
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), indices_of("numeric")),
            (
                "categorical",
                OneHotEncoder(
                    categories=[sorted(f.codes) for f in FEATURES if f.kind == "categorical"],
                    handle_unknown="ignore",
                ),
                indices_of("categorical"),
            ),
            ("binary", "passthrough", indices_of("binary")),
        ]
    )
    classifier = LogisticRegression(C=C, max_iter=1000, random_state=SEED)
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def score_candidate(C: float, data: Dataset) -> Metrics:
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)
    scores = cross_validate(build_pipeline(C), data.X, data.y, cv=folds, scoring=("roc_auc", "accuracy"))
    return Metrics(
        cv_folds=CV_FOLDS,
        roc_auc_mean=round(float(np.mean(scores["test_roc_auc"])), 6),
        roc_auc_std=round(float(np.std(scores["test_roc_auc"])), 6),
        accuracy_mean=round(float(np.mean(scores["test_accuracy"])), 6),
        accuracy_std=round(float(np.std(scores["test_accuracy"])), 6),
    )


def train(data: Dataset) -> TrainedModel:
    """Score every candidate, refit the best on all rows (ties go to the stronger regularisation)."""
    results = []
    for C in CANDIDATE_C:
        metrics = score_candidate(C, data)
        log.info(
            "candidate LogisticRegression(C=%s): ROC AUC %.4f ± %.4f, accuracy %.4f ± %.4f",
            C, metrics.roc_auc_mean, metrics.roc_auc_std, metrics.accuracy_mean, metrics.accuracy_std,
        )
        results.append((metrics.roc_auc_mean, -C, C, metrics))
    _, _, best_C, best_metrics = max(results, key=lambda r: (r[0], r[1]))
    pipeline = build_pipeline(best_C).fit(data.X, data.y)
    params = {"C": best_C, "penalty": "l2", "solver": "lbfgs", "max_iter": 1000}
    return TrainedModel(pipeline=pipeline, classifier_params=params, metrics=best_metrics)
