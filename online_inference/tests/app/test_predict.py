"""Spec: ``POST /predict`` takes rows (``features`` + ``data``) or ``instances`` and answers one
prediction per row, in request order, with P(condition=1) (the model's float32, read back
exactly) and warnings for values outside the training range. A card's class labels are shown in
``/model`` and in OpenAPI's description of the answer; the answer keeps the integer class."""

from __future__ import annotations

import json
import re

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from online_inference.app.settings import Settings
from online_inference.app.compose import create_app
from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_session, bundled_session_with, loaded, valid_row

LABELS = {0: "no disease", 1: "disease"}


def test_rows_and_instances_give_the_same_predictions_in_order(client: TestClient, card: ModelCard) -> None:
    names = card.feature_names
    low = [f.training.min for f in card.features]
    high = [f.training.max for f in card.features]
    rows = [valid_row(card), low, high]
    by_rows = client.post("/predict", json={"features": names, "data": rows})
    by_instances = client.post("/predict", json={"instances": [dict(zip(names, r)) for r in rows]})
    assert by_rows.status_code == by_instances.status_code == 200
    assert by_rows.json() == by_instances.json()
    expected = bundled_session().run(np.array(rows, dtype=np.float32))
    predictions = by_rows.json()["predictions"]
    assert [p["condition"] for p in predictions] == expected.labels.tolist()
    assert np.array([p["probability"] for p in predictions], dtype=np.float32).tobytes() == expected.positive.tobytes()


def test_response_names_the_model(client: TestClient, card: ModelCard) -> None:
    body = client.post("/predict", json={"features": card.feature_names, "data": [valid_row(card)]}).json()
    assert body["model"] == {"name": card.name, "version": card.version}
    assert set(body["predictions"][0]) == {"condition", "probability", "warnings"}
    assert 0 <= body["predictions"][0]["probability"] <= 1


def test_values_outside_training_range_warn_but_predict(client: TestClient, card: ModelCard) -> None:
    row = valid_row(card)
    chol = card.feature_names.index("chol")
    row[chol] = card.features[chol].training.max + 10  # inside the plausible bounds
    prediction = client.post("/predict", json={"features": card.feature_names, "data": [row, valid_row(card)]}).json()
    first, second = prediction["predictions"]
    assert len(first["warnings"]) == 1 and first["warnings"][0].startswith("chol=")
    assert "training range" in first["warnings"][0]
    assert second["warnings"] == []


def test_model_card_is_served(client: TestClient, card: ModelCard) -> None:
    body = client.get("/model").json()
    assert [f["name"] for f in body["features"]] == card.feature_names
    assert body["sha256"] == card.sha256
    assert body["metrics"]["cv_folds"] == 5


@pytest.fixture
def labelled(settings: Settings) -> Iterator[TestClient]:
    """The service on the bundled model whose card labels its classes."""
    app = create_app(settings, loader=lambda: bundled_session_with(class_labels=LABELS))
    with TestClient(app) as test_client:
        assert loaded(app.plane, 10)
        yield test_client


def test_class_labels_are_in_the_card_and_in_openapi_and_the_answer_keeps_the_integer_class(
        labelled: TestClient, client: TestClient, card: ModelCard) -> None:
    assert labelled.get("/model").json()["class_labels"] == {"0": "no disease", "1": "disease"}
    assert client.get("/model").json()["class_labels"] is None  # a card without labels
    row = labelled.get("/openapi.json").json()["components"]["schemas"]["RowPrediction"]["properties"]
    assert row["condition"]["description"] == "The predicted class of 'condition': 0 no disease, 1 disease."
    assert row["condition"]["enum"] == [0, 1] and row["probability"]["description"].startswith("P(condition = 1 (disease)): ")
    body = {"features": card.feature_names, "data": [valid_row(card)]}
    assert labelled.post("/predict", json=body).json() == client.post("/predict", json=body).json()


def test_every_reference_in_the_openapi_document_resolves(client: TestClient) -> None:
    """A reference to ``#/$defs/...`` inside a request body made ReDoc fail to render."""
    document = client.get("/openapi.json").json()
    text = json.dumps(document)
    assert "$defs" not in text
    for name in re.findall(r'"#/components/schemas/([^"]+)"', text):
        assert name in document["components"]["schemas"], name


def test_openapi_examples_come_from_the_card_and_validate(client: TestClient, card: ModelCard) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {"rows", "instances"}
    assert examples["rows"]["value"]["features"] == card.feature_names
    for example in examples.values():
        assert client.post("/predict", json=example["value"]).status_code == 200
    assert client.get("/docs").status_code == 200
