"""Spec: every request passes the front. A valid ``/predict`` is answered by the hot path with the
bytes the FastAPI route gives; HEAD is answered like GET without a body; a body over its limit
answers 413 whichever path reads it; while the server drains, every answer says ``connection:
close``. The whole application is built at start. (The edge's limits: tests/reliability/test_edge.py.)"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from online_inference.app.settings import Settings
from online_inference.app.http.front import Front
from online_inference.app.compose import create_app
from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_session, exchange, valid_row

GETS = ["/health", "/model", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/heart-disease-classifier"]


def predict_body(card: ModelCard, rows: list[list[float]] | None = None) -> bytes:
    return orjson.dumps({"features": card.feature_names, "data": rows or [valid_row(card)]})


def without_front(app: Front) -> Any:
    """The FastAPI application alone: what answers when the hot path does not."""
    return app.app


def test_the_whole_application_is_built_at_start(settings: Settings) -> None:
    app = create_app(settings, loader=bundled_session)
    assert set(without_front(app).openapi()["paths"]) >= {"/predict", "/health", "/v2/models/{name}/infer"}


def test_a_valid_prediction_is_answered_by_the_hot_path_with_the_routes_bytes(ready_app: Front, card: ModelCard) -> None:
    rows = [valid_row(card), [card.features[0].bounds.min, *valid_row(card)[1:]]]
    hot = exchange(ready_app, "/predict", [predict_body(card, rows)])
    route = exchange(without_front(ready_app), "/predict", [predict_body(card, rows)])
    assert hot[0] == 200 and hot == route
    requests = ready_app.plane.metrics.serving.requests
    assert requests[("/predict", "POST", 200)] == 2  # the hot path counts its answers as the route does


@pytest.mark.parametrize("path", GETS)
def test_head_answers_like_get_without_a_body(ready_app: Front, path: str) -> None:
    get_status, get_headers, get_body = exchange(ready_app, path, [b""], method="GET")
    status, headers, body = exchange(ready_app, path, [b""], method="HEAD")
    assert (status, body) == (get_status, b"") and get_body
    if path != "/metrics":  # its counters move with each request
        assert headers[b"content-length"] == get_headers[b"content-length"]


@pytest.mark.parametrize("path", ["/predict", "/v2/models/heart-disease-classifier/infer"])
def test_a_body_declared_over_the_limit_answers_413_unread(settings: Settings, path: str) -> None:
    app = create_app(settings.replace(MAX_BODY_BYTES=1024), loader=bundled_session)
    app.plane.load()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"5000")]
    status, _, body = exchange(app, path, [b"{"], headers=headers)
    assert status == 413 and b"MAX_BODY_BYTES" in body


@pytest.mark.parametrize("path,method", [("/health", "GET"), ("/predict", "POST"), ("/model", "GET")])
def test_while_draining_every_answer_says_connection_close(ready_app: Front, card: ModelCard, path: str, method: str) -> None:
    assert b"connection" not in exchange(ready_app, path, [predict_body(card)], method=method)[1]
    ready_app.drain()
    status, headers, body = exchange(ready_app, path, [predict_body(card)], method=method)
    assert headers[b"connection"] == b"close"
    if path == "/health":
        assert (status, orjson.loads(body)) == (503, {"status": "draining"})
    else:
        assert status == 200  # still answering
