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

from online_inference.app.settings import Settings
from online_inference.app.protocols.native.answer import answer_bytes, probability_texts
from online_inference.app.model.session import Prediction
from online_inference.app.compose import create_app
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
def test_the_answer_holds_each_row_in_order_with_its_probability_and_warnings(ready_app: FastAPI, card: ModelCard,
                                                                                  count: int) -> None:
    rows = [valid_row(card) for _ in range(count)]
    chol = card.feature_names.index("chol")
    for row in (0, 2, count - 1):  # the first row, one inside, the last
        rows[row][chol] = card.features[chol].training.max + 10  # inside the bounds: a warning
    status, answer = call(ready_app, "/predict", [orjson.dumps({"features": card.feature_names, "data": rows})])
    X = np.array(rows, dtype=np.float32)
    expected = bundled_session().run(X)
    warnings = ready_app.plane.served.rules.warnings_by_row(X)
    assert status == 200 and list(warnings) == [0, 2, count - 1]
    assert orjson.loads(answer) == {
        "predictions": [
            {"condition": label, "probability": shortest(p), "warnings": warnings.get(i, [])}
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


def shortest(p: np.float32) -> float:
    """The shortest decimal that reads back as the float32 ``p`` (numpy's Dragon4, not orjson's)."""
    return float(np.format_float_scientific(np.float32(p), unique=True))


def answered(positive: np.ndarray) -> list[float]:
    """The probabilities of an answer whose rows have the model's float32 values ``positive`` (a
    column of the model's output, as the session gives it)."""
    probabilities = np.c_[1 - positive, positive]
    prediction = Prediction(labels=np.zeros(len(positive), dtype=np.int64), probabilities=probabilities, positive=probabilities[:, 1])
    served = SimpleNamespace(card=SimpleNamespace(name="m", version="1", target="y", classes=[0, 1]), rules=SimpleNamespace(warnings_by_row=lambda X: {}))
    answer = orjson.loads(answer_bytes(served, np.zeros((len(positive), 13), np.float32), prediction))  # type: ignore[arg-type]
    return [row["probability"] for row in answer["predictions"]]


def test_a_probability_is_the_models_float32_in_the_shortest_decimal_that_reads_back_as_it() -> None:
    positive = np.random.default_rng(0).random(100_000).astype(np.float32)
    written = answered(positive)
    assert np.array(written, dtype=np.float32).tobytes() == positive.tobytes()
    assert written == [shortest(p) for p in positive]


def test_an_answer_says_0_or_1_only_when_the_model_does() -> None:
    one, zero = np.float32(1), np.float32(0)
    near = np.array([np.nextafter(zero, one), 3e-7, 1e-6, 4.9e-7, 0.9999995, 0.9999999, np.nextafter(one, zero)], dtype=np.float32)
    written = answered(np.r_[near, [zero, one]].astype(np.float32))
    assert written[-2:] == [0.0, 1.0]
    assert all(0 < p < 1 for p in written[:-2]) and np.array(written[:-2], dtype=np.float32).tobytes() == near.tobytes()


def test_small_batches_are_written_as_large_ones_are() -> None:
    positive = np.random.default_rng(1).random((20_000, 2)).astype(np.float32)[:, 1]  # a column, as the session gives it
    written = [b",".join(probability_texts(positive[i:i + 2])) for i in range(0, len(positive), 2)]
    assert b",".join(written) == b",".join(probability_texts(positive))
