"""Fold the fitted pipeline into one linear classifier: the graph the service runs.

Once its codes are one-hot, the whole pipeline is linear: standardised numeric columns, one-hot
codes and passed-through binary columns all enter the logistic regression's score as weighted
sums. So the score is ``w · x + v · onehot(codes of x) + b``, with the scaler folded into the
weights of the raw columns (``w = coef / scale``, ``b = intercept - Σ coef · mean / scale``) and a
weight ``v`` for each code of each categorical column (an unknown code, like the encoder's
``handle_unknown="ignore"``, matches none).

skl2onnx converts the pipeline step by step: 23 nodes (an extractor per step; per categorical
column a gather, a cast and an encoder; the scaler; the concatenations...). The folded graph has
8: select each categorical column once per code, compare with the codes, cast, join to the raw
columns; then score each class with one ``Gemm`` (class 0 scores ``-z``, class 1 ``z``), turn the
scores into probabilities with ``Sigmoid`` and the label with ``ArgMax`` and a ``Gather`` of the
class labels. Without categorical features it has the last 4 alone (no code to select). That is
what skl2onnx's ``LinearClassifier`` with the ``LOGISTIC`` post-transform computes for a binary
logistic regression, but ONNX Runtime's ``LinearClassifier`` computes a lone row differently
from the same row in a batch (the last bit of 1,254 of 3,000 rows' probabilities), whereas ``Gemm``, ``Sigmoid`` and ``ArgMax`` give every row the same bits alone
and at any place in any batch. So a row's answer does not depend on what else the server put in
its model call (docs/ARCHITECTURE.md: batch invariance). ONNX Runtime dispatches every node on
every call, and between a server's requests each one's code is no longer in the CPU's caches: a
1-row call costs several times what it does in a tight loop, and fewer nodes cost less (``make
bench`` measures it). The selection is a product with a matrix of zeros and ones (a 1 per slot, in
its column's row), not a ``Gather`` of the columns: the same values (``x·1`` plus zeros is exactly
``x`` for every finite ``x``, and the service feeds no other), and on a 1000-row batch ONNX
Runtime's ``Gather`` along the columns, copying value by value, took most of the call.

A pipeline of any other shape (trees, another scaler, dropped codes...) raises :class:`CannotFold`,
and the export serves skl2onnx's conversion instead. :func:`convert.export_model` checks whichever
graph it serves against scikit-learn before writing it: the same labels and probabilities on the
training rows and on random valid rows.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from online_inference.export.contributions import LinearContributions, add_on_request, contribution_nodes, linear_contributions


class CannotFold(ValueError):
    """The pipeline is not a binary logistic regression over scaled, one-hot and passed columns."""


class LinearScore:
    """A binary logistic regression's score over raw columns and their one-hot codes."""

    def __init__(self, width: int, intercept: float):
        self.weights = np.zeros(width)  # per raw column
        self.bias = intercept
        self.code_columns: list[int] = []  # per one-hot slot: its column, its code, its weight
        self.codes: list[float] = []
        self.code_weights: list[float] = []

    def add_scaled(self, scaler: StandardScaler, columns: list[int], coef: np.ndarray) -> None:
        mean = scaler.mean_ if scaler.with_mean else np.zeros(len(columns))
        scale = scaler.scale_ if scaler.with_std else np.ones(len(columns))
        self.weights[columns] += coef / scale
        self.bias -= float(np.sum(coef * mean / scale))

    def add_one_hot(self, column: int, codes: np.ndarray, coef: np.ndarray) -> None:
        self.code_columns += [column] * len(codes)
        self.codes += [float(code) for code in codes]
        self.code_weights += coef.tolist()

    def add_passed(self, columns: list[int], coef: np.ndarray) -> None:
        self.weights[columns] += coef


def is_identity(transformer: object) -> bool:
    """A fitted ColumnTransformer holds "passthrough" as a FunctionTransformer without a function."""
    if isinstance(transformer, FunctionTransformer):
        return transformer.func is None
    return isinstance(transformer, str) and transformer == "passthrough"


def is_plain_one_hot(encoder: OneHotEncoder) -> bool:
    """A slot per category: none dropped, none grouped as infrequent."""
    return encoder.drop_idx_ is None and encoder.min_frequency is None and encoder.max_categories is None


def fold_score(pipeline: Pipeline, width: int) -> LinearScore:
    """The pipeline's score as one linear function; CannotFold for a step it cannot fold."""
    preprocess, classifier = pipeline[0], pipeline[-1]
    if len(pipeline) != 2 or not isinstance(preprocess, ColumnTransformer) or not isinstance(classifier, LogisticRegression):
        raise CannotFold(f"can fold a ColumnTransformer then a LogisticRegression, not {pipeline.steps}")
    if len(classifier.classes_) != 2:
        raise CannotFold(f"can fold a binary classifier, not classes {classifier.classes_.tolist()}")
    coef = classifier.coef_[0].astype(np.float64)
    score = LinearScore(width, float(classifier.intercept_[0]))
    position = 0
    for name, transformer, columns in preprocess.transformers_:
        columns = list(columns)
        if not columns or (isinstance(transformer, str) and transformer == "drop"):
            continue  # a step over no columns weighs nothing (scikit-learn leaves it unfitted)
        if isinstance(transformer, StandardScaler):
            score.add_scaled(transformer, columns, coef[position:position + len(columns)])
            position += len(columns)
        elif isinstance(transformer, OneHotEncoder) and is_plain_one_hot(transformer):
            for column, codes in zip(columns, transformer.categories_):
                score.add_one_hot(column, codes, coef[position:position + len(codes)])
                position += len(codes)
        elif is_identity(transformer):
            score.add_passed(columns, coef[position:position + len(columns)])
            position += len(columns)
        else:
            raise CannotFold(f"cannot fold the step {name!r}: {transformer!r}")
    if position != len(coef):
        raise CannotFold(f"the steps give {position} columns, the classifier weighs {len(coef)}")
    return score


def one_hot_nodes(source: str, width: int, score: LinearScore) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """``columns_and_codes``: the raw columns, then a 0/1 per code slot (its column equals its code)."""
    nodes = [
        helper.make_node("MatMul", [source, "code_selection"], ["code_column_values"]),
        helper.make_node("Equal", ["code_column_values", "codes"], ["is_code"]),
        helper.make_node("Cast", ["is_code"], ["one_hot"], to=TensorProto.FLOAT),
        helper.make_node("Concat", [source, "one_hot"], ["columns_and_codes"], axis=1),
    ]
    selection = np.zeros((width, len(score.code_columns)), dtype=np.float32)
    selection[score.code_columns, np.arange(len(score.code_columns))] = 1  # slot k takes its column's value
    constants = [numpy_helper.from_array(selection, "code_selection"),
                 numpy_helper.from_array(np.array(score.codes, dtype=np.float32), "codes")]
    return nodes, constants


def fold_pipeline(pipeline: Pipeline, reference: onnx.ModelProto, X_train: np.ndarray) -> tuple[onnx.ModelProto, LinearContributions]:
    """The folded graph, with the input, outputs, opsets and IR version of skl2onnx's
    conversion ``reference`` (one float ``[N, width]`` input; label and probabilities), and each
    feature's contribution as a third output (:mod:`contributions`, centred on ``X_train``)."""
    source, (label, probabilities) = reference.graph.input[0], reference.graph.output
    width = source.type.tensor_type.shape.dim[1].dim_value
    score = fold_score(pipeline, width)
    terms = linear_contributions(score, X_train)
    row = np.concatenate([score.weights, score.code_weights]).astype(np.float32)
    nodes, constants = one_hot_nodes(source.name, width, score) if score.codes else ([], [])
    columns = "columns_and_codes" if score.codes else source.name
    contributed, contribution_constants = contribution_nodes(source.name, "one_hot" if score.codes else None, score, terms)
    nodes += [
        helper.make_node("Gemm", [columns, "class_weights", "class_biases"], ["scores"]),
        helper.make_node("Sigmoid", ["scores"], [probabilities.name]),
        helper.make_node("ArgMax", ["scores"], ["class_index"], axis=1, keepdims=0),  # a tie (z = 0): class 0
        helper.make_node("Gather", ["class_labels", "class_index"], [label.name]),
    ]
    constants += [
        numpy_helper.from_array(np.column_stack([-row, row]), "class_weights"),  # class 0 scores -z, class 1 scores z
        numpy_helper.from_array(np.array([-score.bias, score.bias], dtype=np.float32), "class_biases"),
        numpy_helper.from_array(np.array(pipeline.classes_, dtype=np.int64), "class_labels"),
    ]
    graph = helper.make_graph(nodes, "folded_pipeline", [source], [label, probabilities], constants)
    # skl2onnx lists the opsets in an order that changes with Python's hash seed: sorted, an export is reproducible.
    opsets = sorted(reference.opset_import, key=lambda opset: opset.domain)
    folded = helper.make_model(graph, opset_imports=opsets, producer_name="online_inference.export.fold")
    folded.ir_version = reference.ir_version
    add_on_request(folded, contributed, contribution_constants, width)
    return folded, terms
