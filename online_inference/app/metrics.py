"""Prometheus metrics of one app instance (own registry: tests and apps never share counters)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from online_inference.card import ModelCard

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests", "HTTP requests by route, method and status.", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency by route.", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.inference_latency = Histogram(
            "inference_duration_seconds",
            "Time spent in the ONNX Runtime session, per model call (small requests arriving together share one).",
            buckets=LATENCY_BUCKETS, registry=r
        )
        self.rows = Counter("predicted_rows", "Rows predicted.", registry=r)
        self.classes = Counter("predicted_class", "Predictions by class.", ["condition"], registry=r)
        self.validation_failures = Counter(
            "validation_failures", "Requests rejected as invalid, by protocol.", ["protocol"], registry=r
        )
        self.model_info = Gauge("model_info", "The loaded model (value 1).", ["name", "version", "sha256"], registry=r)
        self.model_ready = Gauge("model_ready", "1 when the model is loaded and checked.", registry=r)
        self.request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.class_children: dict[int, Counter] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self.request_children.get(key)
        if children is None:  # prometheus' labels() validates and locks: do it once per key
            children = self.request_children[key] = (
                self.requests.labels(route, method, str(status)), self.latency.labels(route)
            )
        children[0].inc()
        children[1].observe(seconds)

    @contextmanager
    def observe_inference(self, rows: int) -> Iterator[None]:
        """Time one call of the model and count its rows (only if it succeeded)."""
        started = time.perf_counter()
        yield
        self.inference_latency.observe(time.perf_counter() - started)
        self.rows.inc(rows)

    def count_classes(self, labels: np.ndarray, classes: list[int]) -> None:
        counts = np.bincount(labels, minlength=max(classes) + 1).tolist()
        for c in classes:
            if counts[c]:
                child = self.class_children.get(c)
                if child is None:
                    child = self.class_children[c] = self.classes.labels(str(c))
                child.inc(counts[c])

    def set_model(self, card: ModelCard) -> None:
        self.model_info.labels(card.name, card.version, card.sha256 or "").set(1)
        self.model_ready.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
