"""Spec: ``/health`` answers 200 "ready" with the model's identity once loaded and checked, 503
"loading" before, 503 "failed" with the reason after a failure; ``/predict`` answers 503 until ready."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from online_inference.app.settings import Settings
from online_inference.app.compose import create_app
from online_inference.app.model.session import ModelLoadError, ModelSession
from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_session, loaded, valid_row


def test_ready_reports_the_model(client: TestClient, card: ModelCard) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "model": {"name": card.name, "version": card.version, "sha256": card.sha256}}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_loading_answers_503_until_the_model_is_loaded(card: ModelCard) -> None:
    release = threading.Event()

    def slow_loader() -> ModelSession:
        release.wait(10)
        return bundled_session()

    app = create_app(Settings(environment={}), loader=slow_loader)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 503
        assert client.get("/health").json() == {"status": "loading"}
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/v2/health/live").status_code == 200
        predict = client.post("/predict", json={"features": card.feature_names, "data": [valid_row(card)]})
        assert predict.status_code == 503 and "loading" in predict.json()["error"]
        release.set()
        assert loaded(app.plane, 10)
        assert client.get("/health").status_code == 200


def test_failed_load_answers_503_with_the_reason(card: ModelCard) -> None:
    def broken_loader() -> ModelSession:
        raise ModelLoadError("sha256 mismatch: expected aaa, got bbb")

    app = create_app(Settings(environment={}), loader=broken_loader)
    with TestClient(app) as client:
        assert loaded(app.plane, 10)
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "failed", "reason": "sha256 mismatch: expected aaa, got bbb"}
        predict = client.post("/predict", json={"features": card.feature_names, "data": [valid_row(card)]})
        assert predict.status_code == 503 and "sha256 mismatch" in predict.json()["error"]


def test_a_file_that_is_not_onnx_fails_with_the_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a model")
    app = create_app(Settings(MODEL_URI=str(path)))
    with TestClient(app) as client:
        assert loaded(app.plane, 10)
        body = client.get("/health").json()
        assert body["status"] == "failed" and "not a loadable ONNX model" in body["reason"]


def test_a_missing_file_fails_with_the_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(MODEL_URI=str(tmp_path / "absent.onnx")))
    with TestClient(app) as client:
        assert loaded(app.plane, 10)
        body = client.get("/health").json()
        assert body["status"] == "failed" and "absent.onnx" in body["reason"]


def test_ready_means_every_protocol_has_built_what_it_reads_the_model_with(card: ModelCard) -> None:
    """/predict's body model (pydantic, from the card) is built before the model is served, not by
    the first request; a model it cannot be built for fails to load, with the reason."""
    from online_inference.app.dataplane.plane import create_plane
    from online_inference.app.protocols.native.request import predict_request

    app = create_app(Settings(environment={}), loader=bundled_session)
    with TestClient(app):
        assert loaded(app.plane, 10)
        before = predict_request.cache_info()
        predict_request(app.plane.served)
        assert predict_request.cache_info().hits == before.hits + 1

    def refuse(served: object) -> None:
        raise ValueError("cannot describe this model")

    plane = create_plane(Settings(environment={}), bundled_session, prepare=[refuse])
    plane.load()
    assert plane.health() == {"status": "failed", "reason": "cannot describe this model"}
