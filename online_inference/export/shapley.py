"""The reference the served contributions are checked against: exact Shapley values computed
directly from the fitted scikit-learn pipeline, in float64, with the training rows as the
background (features taken as independent: what SHAP's LinearExplainer computes for a linear
model).

For a model whose score is a sum of per-feature terms, ``z(x) = c + Σ_j f_j(x_j)``, the Shapley
value of feature ``j`` is ``f_j(x_j) − mean over the training rows of f_j``. A logistic regression
over the pipeline's transformed columns is such a sum: each transformed column (a scaled value, a
one-hot slot, a passed value) belongs to one input feature, and feature ``j``'s term is the sum of
``coef × column`` over its columns. This module reads that mapping from scikit-learn's fitted
``ColumnTransformer`` alone, not from the folded graph (:mod:`fold`), so the two are independent.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def source_features(preprocess: ColumnTransformer, width: int) -> np.ndarray:
    """For each column the transformer outputs, the input feature it comes from."""
    owners = np.full(preprocess.transform(np.zeros((1, width))).shape[1], -1)
    for name, transformer, columns in preprocess.transformers_:
        part = preprocess.output_indices_.get(name, slice(0, 0))
        if part.stop == part.start:
            continue
        columns = list(columns)
        if isinstance(transformer, OneHotEncoder):
            owners[part] = np.repeat(columns, [len(c) for c in transformer.categories_])
        else:
            owners[part] = columns
    return owners


def transformed(preprocess: ColumnTransformer, X: np.ndarray) -> np.ndarray:
    """The pipeline's transformed columns as a dense array (a one-hot step alone gives a sparse matrix)."""
    columns = preprocess.transform(X)
    return columns.toarray() if hasattr(columns, "toarray") else np.asarray(columns)


def linear_shapley(pipeline: Pipeline, X: np.ndarray, X_train: np.ndarray) -> tuple[np.ndarray, float]:
    """float64 ``[N, features]`` Shapley values of the rows ``X`` for a logistic regression over a
    ColumnTransformer, and the baseline (the mean training score)."""
    preprocess, classifier = pipeline[0], pipeline[-1]
    assert isinstance(classifier, LogisticRegression) and isinstance(preprocess, ColumnTransformer)
    coef = classifier.coef_[0]
    background = transformed(preprocess, X_train).mean(axis=0)
    terms = (transformed(preprocess, X) - background) * coef
    values = np.zeros((len(X), X.shape[1]))
    np.add.at(values.T, source_features(preprocess, X.shape[1]), terms.T)
    return values, float(classifier.intercept_[0] + coef @ background)
