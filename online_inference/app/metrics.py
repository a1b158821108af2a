"""Prometheus metrics of one app instance (own registry: tests and apps never share counters).

What every request and every model call updates (requests, latencies, rows, classes) is kept as
plain numbers and turned into metric families when scraped: prometheus_client's own metrics take
a lock and check their state on every update, which cost more than the rest of the metrics
together on a one-row request. Only the event loop's thread updates them (every handler is a
coroutine), so they need no lock. What changes rarely (validation failures, the model's identity)
stays with prometheus_client's metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from online_inference.app.fastpath import SMALL_BATCH  # up to this many rows, Python beats numpy's per-call cost
from online_inference.card import ModelCard

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BUCKET_NAMES = [*map(str, LATENCY_BUCKETS), "+Inf"]


class Latencies:
    """A histogram of durations as plain numbers: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKET_NAMES)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bucket with seconds <= le
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        total, buckets = 0, []
        for name, count in zip(BUCKET_NAMES, self.counts):
            total += count
            buckets.append((name, total))
        return buckets


class Serving:
    """The metrics of serving: a collector that the registry asks for its families on each scrape."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}  # (route, method, status) → count
        self.latency: dict[str, Latencies] = {}  # route → request durations
        self.inference = Latencies()
        self.rows = 0
        self.classes: dict[int, int] = {}

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("http_requests", "HTTP requests by route, method and status.",
                                       labels=["route", "method", "status"])
        for (route, method, status), count in self.requests.items():
            requests.add_metric([route, method, str(status)], count)
        latency = HistogramMetricFamily("http_request_duration_seconds", "HTTP request latency by route.", labels=["route"])
        for route, latencies in self.latency.items():
            latency.add_metric([route], latencies.cumulative(), latencies.sum)
        inference = HistogramMetricFamily(
            "inference_duration_seconds",
            "Time spent in the ONNX Runtime session, per model call (small requests arriving together share one).",
            buckets=self.inference.cumulative(), sum_value=self.inference.sum,
        )
        classes = CounterMetricFamily("predicted_class", "Predictions by class.", labels=["condition"])
        for label, count in sorted(self.classes.items()):
            classes.add_metric([str(label)], count)
        yield from (requests, latency, inference, CounterMetricFamily("predicted_rows", "Rows predicted.", value=self.rows), classes)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.serving = Serving()
        r.register(self.serving)
        self.validation_failures = Counter(
            "validation_failures", "Requests rejected as invalid, by protocol.", ["protocol"], registry=r
        )
        self.model_info = Gauge("model_info", "The loaded model (value 1).", ["name", "version", "sha256"], registry=r)
        self.model_ready = Gauge("model_ready", "1 when the model is loaded and checked.", registry=r)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        serving, key = self.serving, (route, method, status)
        serving.requests[key] = serving.requests.get(key, 0) + 1
        latencies = serving.latency.get(route)
        if latencies is None:
            latencies = serving.latency[route] = Latencies()
        latencies.observe(seconds)

    def observe_inference(self, labels: np.ndarray, seconds: float) -> None:
        """One successful call of the model: its duration, its rows and the classes it predicted."""
        serving = self.serving
        serving.inference.observe(seconds)
        serving.rows += len(labels)
        classes = serving.classes
        for label, count in count_labels(labels):
            classes[label] = classes.get(label, 0) + count

    def set_model(self, card: ModelCard) -> None:
        self.model_info.labels(card.name, card.version, card.sha256 or "").set(1)
        self.model_ready.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def count_labels(labels: np.ndarray) -> list[tuple[int, int]]:
    """(label, count) for the labels predicted by one call."""
    if len(labels) <= SMALL_BATCH:
        return [(label, 1) for label in labels.tolist()]
    return [(label, count) for label, count in enumerate(np.bincount(labels).tolist()) if count]  # labels are class indices
