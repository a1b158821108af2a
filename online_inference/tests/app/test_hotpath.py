"""Spec: the hot path answers valid ``/predict`` bodies and ``/health`` exactly as the full
application would, and hands everything else to it with the body already read replayed:
a body in several chunks, one over the limit without Content-Length, a client that goes away,
a model not loaded yet."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import orjson
import pytest
from fastapi import FastAPI

from online_inference.app.config import Settings
from online_inference.app.hotpath import predict_body, round_probabilities
from online_inference.app.session import Prediction
from online_inference.app.main import create_app
from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_session, call, valid_row



def body_of(card: ModelCard, rows: int = 3) -> bytes:
    return orjson.dumps({"features": card.feature_names, "data": [valid_row(card)] * rows})


def requests_counted(app: FastAPI, route: str, status: int) -> float:
    value = app.plane.metrics.registry.get_sample_value(
        "http_requests_total", {"route": route, "method": "POST", "status": str(status)})
    return value or 0.0


def test_a_body_in_chunks_is_answered_like_one_in_a_piece(ready_app: FastAPI, card: ModelCard) -> None:
    body = body_of(card)
    whole = call(ready_app, "/predict", [body])
    assert whole[0] == 200
    assert call(ready_app, "/predict", [body[:10], body[10:50], body[50:]]) == whole
    assert requests_counted(ready_app, "/predict", 200) == 2


@pytest.mark.parametrize("count", [4, 9, 40])  # checked value by value, as arrays, read by simdjson
def test_the_answer_holds_each_row_in_order_with_probability_rounded_and_warnings(ready_app: FastAPI, card: ModelCard,
                                                                                  count: int) -> None:
    rows = [valid_row(card) for _ in range(count)]
    chol = card.feature_names.index("chol")
    for row in (0, 2, count - 1):  # the first row, one inside, the last
        rows[row][chol] = card.features[chol].training.max + 10  # inside the bounds: a warning
    status, answer = call(ready_app, "/predict", [orjson.dumps({"features": card.feature_names, "data": rows})])
    X = np.array(rows, dtype=np.float32)
    expected = bundled_session().predict(X)
    warnings = ready_app.plane.served.fast.warnings_by_row(X)
    assert status == 200 and list(warnings) == [0, 2, count - 1]
    assert orjson.loads(answer) == {
        "predictions": [
            {"condition": label, "probability": round(float(p), 6), "warnings": warnings.get(i, [])}
            for i, (label, p) in enumerate(zip(expected.labels.tolist(), expected.positive))
        ],
        "model": {"name": card.name, "version": card.version},
    }


def test_a_body_over_the_limit_without_length_gets_413_from_the_full_application(settings: Settings, card: ModelCard) -> None:
    app = create_app(settings.replace(MAX_BODY_BYTES=1024), loader=bundled_session)
    app.plane.load()
    status, answer = call(app, "/predict", [b"[" * 600, b"[" * 600, b"]" * 1200])
    assert status == 413 and b"MAX_BODY_BYTES" in answer
    assert requests_counted(app, "/predict", 413) == 1


def test_a_client_gone_mid_body_is_counted_499_and_not_answered(ready_app: FastAPI, card: ModelCard) -> None:
    assert call(ready_app, "/predict", [body_of(card)[:20]], disconnect=True) == (0, b"")
    assert requests_counted(ready_app, "/predict", 499) == 1


def test_invalid_bodies_are_explained_by_the_full_application(ready_app: FastAPI, card: ModelCard) -> None:
    row = valid_row(card)
    row[0] = None
    status, answer = call(ready_app, "/predict", [orjson.dumps({"features": card.feature_names, "data": [row]})])
    assert status == 400 and orjson.loads(answer)["problems"][0]["feature"] == card.feature_names[0]


def test_another_media_type_gets_415(ready_app: FastAPI, card: ModelCard) -> None:
    status, _ = call(ready_app, "/predict", [body_of(card)], headers=[(b"content-type", b"text/plain")])
    assert status == 415


def test_before_the_model_is_loaded_predict_and_health_answer_503(settings: Settings, card: ModelCard) -> None:
    app = create_app(settings, loader=bundled_session)  # not loaded
    assert call(app, "/predict", [body_of(card)])[0] == 503
    status, answer = call(app, "/health", [b""], method="GET")
    assert (status, orjson.loads(answer)["status"]) == (503, "loading")


def test_probabilities_are_rounded_as_numpy_rounds_them() -> None:
    positive = np.random.default_rng(0).random(100_000).astype(np.float32)
    prediction = Prediction(labels=np.zeros(len(positive), dtype=np.int64), probabilities=np.c_[1 - positive, positive], positive=positive)
    served = SimpleNamespace(card=SimpleNamespace(name="m", version="1", target="y", classes=[0, 1]), fast=SimpleNamespace(warnings_by_row=lambda X: {}))
    answer = orjson.loads(predict_body(served, np.zeros((len(positive), 13), np.float32), prediction))  # type: ignore[arg-type]
    assert [row["probability"] for row in answer["predictions"]] == np.round(positive.astype(np.float64), 6).tolist()


def test_small_batches_are_rounded_and_written_as_large_ones_are() -> None:
    positive = np.random.default_rng(1).random(20_000).astype(np.float32)
    as_numpy = orjson.dumps(np.round(positive.astype(np.float64), 6), option=orjson.OPT_SERIALIZE_NUMPY)
    written = [orjson.dumps(round_probabilities(positive[i:i + 2]))[1:-1] for i in range(0, len(positive), 2)]
    assert b"[" + b",".join(written) + b"]" == as_numpy
