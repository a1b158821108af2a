"""Spec: ``POST /explain`` takes ``/predict``'s bodies, checked the same way, and answers each row's
``/predict`` answer plus its contributions (one per feature, in the card's order, in logit units),
the baseline and its three largest reasons in words. The contributions are the sums anyone can redo
from ``/model`` (weight × distance from the training mean; a code's weight minus its training
average), add up with the baseline to the row's logit, and are the same bits alone, anywhere in any
batch, and when the row shares a model call with other clients' rows. V2 gives them as the
``contributions`` output when asked, the same bits; its default answer is unchanged. A model without
exact contributions answers 501 (V2: 400), saying why. OpenAPI documents ``/explain``."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from online_inference.app.compose import create_app
from online_inference.app.dataplane.plane import DataPlane
from online_inference.app.settings import Settings
from online_inference.card import NO_CONTRIBUTIONS, ModelCard
from online_inference.export.checks import logit_gap, random_valid_rows
from online_inference.export.spec import HEART_SPEC, load_spec
from online_inference.tests.helpers import bundled_session_with, loaded, valid_row

V2_INFER = "/v2/models/heart-disease-classifier/infer"


def rows_of(card: ModelCard, count: int) -> list[list[float]]:
    return random_valid_rows(load_spec(HEART_SPEC), count).astype(np.float32).tolist()


def explain(client: TestClient, card: ModelCard, rows: list[list[float]]) -> list[dict[str, Any]]:
    response = client.post("/explain", json={"features": card.feature_names, "data": rows})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]  # type: ignore[no-any-return]


def contributions_of(answer: list[dict[str, Any]]) -> np.ndarray:
    return np.array([list(row["contributions"].values()) for row in answer], dtype=np.float32)


def test_each_row_gets_its_predict_answer_plus_contributions_baseline_and_reasons(client: TestClient, card: ModelCard) -> None:
    rows = rows_of(card, 20)
    answer = explain(client, card, rows)
    predicted = client.post("/predict", json={"features": card.feature_names, "data": rows}).json()["predictions"]
    assert [{k: row[k] for k in (card.target, "probability", "warnings")} for row in answer] == predicted
    assert all(list(row["contributions"]) == card.feature_names for row in answer)
    assert {row["baseline"] for row in answer} == {card.contributions.baseline}
    assert all(len(row["reasons"]) == 3 for row in answer)


def test_the_contributions_are_the_sums_of_the_cards_weights_and_means(client: TestClient, card: ModelCard) -> None:
    rows = rows_of(card, 200)
    served = contributions_of(explain(client, card, rows))
    by_hand = np.array([[
        f.code_weights[int(x)] - f.mean if f.code_weights is not None else f.weight * (x - f.mean)  # type: ignore[operator]
        for f, x in zip(card.features, row)] for row in rows])
    np.testing.assert_allclose(served, by_hand, atol=1e-5)


def test_they_add_up_with_the_baseline_to_the_logit_of_the_probability(client: TestClient, card: ModelCard) -> None:
    answer = explain(client, card, rows_of(card, 500))
    gap, allowed = logit_gap(card.contributions.baseline or 0.0, contributions_of(answer),
                             np.array([row["probability"] for row in answer], dtype=np.float32))
    assert np.all(gap <= allowed), gap.max()


def test_the_reasons_name_the_largest_contributions_in_the_cards_words(client: TestClient, card: ModelCard) -> None:
    """Each row's (at most) three largest contributions by size, ties in the card's order, none that
    is zero, each in words: the meaning, the value (with its unit, or its code's label), the way it
    moves the probability and by how much. Over a batch, as a batch is explained at once."""
    rows = [valid_row(card), *rows_of(card, 300)]
    outcome = f"{card.target} {card.class_name(card.positive_class)}"

    def shown(feature: Any, value: float) -> str:
        if feature.codes:
            label = feature.codes[int(value)]
            return label if label == str(int(value)) else f"{label} ({int(value)})"
        return f"{value:g}" + (f" {feature.unit}" if feature.unit else "")

    for row, answer in zip(rows, explain(client, card, rows)):
        contributions = list(answer["contributions"].values())
        largest = sorted(range(len(contributions)), key=lambda j: -abs(contributions[j]))[:3]
        assert answer["reasons"] == [
            f"{card.features[j].description}: {shown(card.features[j], row[j])} "
            f"{'raises' if contributions[j] > 0 else 'lowers'} the probability of {outcome} ({contributions[j]:+.2f} logit)"
            for j in largest if contributions[j]]


def test_a_row_has_the_same_contribution_bits_alone_in_any_batch_and_beside_other_clients(ready_app: Any, card: ModelCard) -> None:
    plane: DataPlane = ready_app.plane
    served = plane.ready()
    X = np.array(rows_of(card, 64), dtype=np.float32)
    alone = np.concatenate([served.session.run(X[i:i + 1], explain=True).contributions for i in range(len(X))])  # type: ignore[misc]
    batched = served.session.run(X[::-1], explain=True).contributions[::-1]  # type: ignore[index]

    async def crowd() -> list[Any]:  # one turn of the loop: the requests share one model call
        asks = [plane.predict(served, X[i:i + 1], explain=i % 2 == 0) for i in range(len(X))]
        return await asyncio.gather(*asks)

    shared = asyncio.run(crowd())
    assert alone.tobytes() == batched.tobytes()
    assert np.concatenate([p.contributions for p in shared[::2]]).tobytes() == alone[::2].tobytes()
    assert np.concatenate([p.probabilities for p in shared]).tobytes() == served.session.run(X).probabilities.tobytes()


@pytest.mark.parametrize("body", [
    {"features": ["age"], "data": [[1]]},
    {"instances": [{"age": 50}]},
    {"data": [[1e9] * 13]},
    {"features": None, "data": "rows"},
    [],
    {"instances": []},
], ids=["wrong features", "missing features", "out of bounds", "wrong types", "not an object", "empty batch"])
def test_invalid_input_is_answered_as_predict_answers_it(client: TestClient, body: Any) -> None:
    explained, predicted = (client.post(path, json=body) for path in ("/explain", "/predict"))
    assert (explained.status_code, explained.json()) == (predicted.status_code, predicted.json())
    assert explained.status_code == 400


def test_too_many_rows_and_another_media_type_are_answered_as_predict_answers_them(client: TestClient, card: ModelCard,
                                                                                  settings: Settings) -> None:
    many = {"features": card.feature_names, "data": [valid_row(card)] * (settings.MAX_BATCH_ROWS + 1)}
    for send in ({"json": many}, {"content": b"{}", "headers": {"content-type": "text/plain"}}):
        explained, predicted = (client.post(path, **send) for path in ("/explain", "/predict"))  # type: ignore[arg-type]
        assert (explained.status_code, explained.json()) == (predicted.status_code, predicted.json())
        assert explained.status_code in (413, 415)


def test_v2_gives_them_as_an_output_when_asked_the_same_bits(client: TestClient, card: ModelCard) -> None:
    rows = rows_of(card, 5)
    tensor = {"name": "input", "shape": [5, 13], "datatype": "FP32", "data": rows}
    default = client.post(V2_INFER, json={"inputs": [tensor]}).json()
    assert [o["name"] for o in default["outputs"]] == ["label", "probabilities"]
    asked = client.post(V2_INFER, json={"inputs": [tensor], "outputs": [{"name": "contributions"}]}).json()
    (output,) = asked["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("contributions", "FP32", [5, 13])
    served = np.array(output["data"], dtype=np.float32).reshape(5, 13)
    assert served.tobytes() == contributions_of(explain(client, card, rows)).tobytes()


def test_a_model_without_contributions_says_why(settings: Settings, card: ModelCard) -> None:
    app = create_app(settings, loader=lambda: bundled_session_with(contributions=NO_CONTRIBUTIONS))
    with TestClient(app) as client:
        assert loaded(app.plane, 10)
        refused = client.post("/explain", json={"features": card.feature_names, "data": [valid_row(card)]})
        assert refused.status_code == 501
        assert refused.json() == {"error": f"model {card.name!r} has no exact per-feature contributions: {NO_CONTRIBUTIONS.why}"}
        tensor = {"name": "input", "shape": [1, 13], "datatype": "FP32", "data": valid_row(card)}
        v2 = client.post(V2_INFER, json={"inputs": [tensor], "outputs": [{"name": "contributions"}]})
        assert v2.status_code == 400 and NO_CONTRIBUTIONS.why in v2.json()["error"]
        assert client.get("/model").json()["contributions"]["method"] == "none"


def test_openapi_documents_explain_with_predicts_body_and_the_served_models_answer(client: TestClient, card: ModelCard) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/explain"]["post"]
    assert operation["requestBody"] == document["paths"]["/predict"]["post"]["requestBody"]
    answer = operation["responses"]["200"]["content"]["application/json"]
    assert answer["example"]["predictions"] == explain(client, card, [valid_row(card)])
    schemas = document["components"]["schemas"]
    contributions = schemas["RowExplanation"]["properties"]["contributions"]
    assert list(schemas[contributions["$ref"].rsplit("/", 1)[1]]["properties"]) == card.feature_names
    assert "501" in operation["responses"]
