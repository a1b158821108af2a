"""Spec: ``/metrics`` exposes requests by route and status, latency, rows predicted, predicted
classes, validation failures and the model's identity."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from online_inference.card import ModelCard
from online_inference.tests.helpers import valid_row


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_requests_rows_classes_and_failures(client: TestClient, card: ModelCard) -> None:
    rows = [valid_row(card)] * 3
    client.post("/predict", json={"features": card.feature_names, "data": rows})
    client.post("/predict", json={"features": card.feature_names, "data": [["x"] * 13]})
    client.get("/nowhere")
    m = samples(client)
    assert m[("http_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))] == 1
    assert m[("http_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "400")))] == 1
    assert m[("http_requests_total", (("method", "GET"), ("route", "<unmatched>"), ("status", "404")))] == 1
    assert m[("http_request_duration_seconds_count", (("route", "/predict"),))] == 2
    assert m[("predicted_rows_total", ())] == 3
    assert sum(v for (name, _), v in m.items() if name == "predicted_class_total") == 3
    assert m[("validation_failures_total", (("protocol", "predict"),))] == 1
    assert m[("model_info", (("name", card.name), ("sha256", card.sha256 or ""), ("version", card.version)))] == 1
    assert m[("model_ready", ())] == 1
    assert m[("inference_duration_seconds_count", ())] == 1


def test_each_app_has_its_own_registry(client: TestClient) -> None:
    """A fresh app starts from zero (the fixture builds one per test)."""
    assert ("predicted_rows_total", ()) in samples(client)
    assert samples(client)[("predicted_rows_total", ())] == 0
