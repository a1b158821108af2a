"""Spec: ``/metrics`` exposes requests by route and status, latency, rows predicted, predicted
classes, validation failures and the model's identity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from online_inference.app.dataplane.admission import Counts
from online_inference.app.dataplane.metrics import LATENCY_BUCKETS, Latencies, Metrics

from online_inference.card import ModelCard
from online_inference.tests.helpers import valid_row

ROOT = Path(__file__).resolve().parents[3]


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


def test_latency_buckets_hold_what_prometheus_histograms_hold() -> None:
    """Durations on a bucket's bound belong to it, as in prometheus_client's own histogram."""
    registry = CollectorRegistry()
    reference = Histogram("reference", "", buckets=LATENCY_BUCKETS, registry=registry)
    ours = Latencies()
    for seconds in [0.0, *LATENCY_BUCKETS, *(b * 1.0001 for b in LATENCY_BUCKETS), 0.0003, 7.0]:
        reference.observe(seconds)
        ours.observe(seconds)
    expected = {s.labels["le"]: s.value for s in registry.collect().__next__().samples if s.name == "reference_bucket"}
    assert {le: float(count) for le, count in ours.cumulative()} == {
        le if le == "+Inf" else str(float(le)): count for le, count in expected.items()}
    assert ours.sum == registry.get_sample_value("reference_sum")


def test_classes_are_counted_alike_for_small_and_large_calls() -> None:
    labels = np.random.default_rng(2).integers(0, 2, 1000)
    one_call, row_by_row = Metrics(Counts()), Metrics(Counts())
    one_call.observe_inference(labels, 0.001)
    for label in labels:
        row_by_row.observe_inference(np.array([label]), 0.001)
    assert one_call.serving.classes == row_by_row.serving.classes == {0: int((labels == 0).sum()), 1: int((labels == 1).sum())}
    assert one_call.serving.rows == row_by_row.serving.rows == 1000


def test_prometheus_client_is_imported_on_the_first_scrape_not_at_start() -> None:
    """A tenth of a start's imports: the server starts, loads its model and answers without it."""
    probe = (
        "import sys\n"
        "from online_inference.app.__main__ import main\n"
        "from online_inference.app.compose import create_app\n"
        "from online_inference.tests.helpers import bundled_session\n"
        "front = create_app(loader=bundled_session)\n"
        "front.plane.load()\n"
        "print('prometheus_client' in sys.modules)\n"
        "front.plane.metrics.render()\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.split() == ["False", "True"]
