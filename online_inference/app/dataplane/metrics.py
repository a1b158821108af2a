"""Prometheus metrics of one app instance (own registry: tests and apps never share counters).

Every metric is kept as plain numbers and turned into metric families when scraped:
prometheus_client's own metrics take a lock and check their state on every update. Only the event
loop's thread updates the counts (every handler is a coroutine), so they need no lock; the
threads that load models (one at a time: dataplane/repository.py) only set the card served and
count the loads. prometheus_client itself is imported, and the
registry built, on the first scrape: nothing before a scrape needs it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from online_inference.app.dataplane.admission import Counts
from online_inference.app.dataplane.rules import SMALL_BATCH  # up to this many rows, Python beats numpy's per-call cost
from online_inference.card import ModelCard

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

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

    def __init__(self, load: Counts) -> None:
        self.load = load  # the admission's: bytes in flight, refusals and sheds
        self.requests: dict[tuple[str, str, int], int] = {}  # (route, method, status) → count
        self.latency: dict[str, Latencies] = {}  # route → request durations
        self.inference = Latencies()
        self.rows = 0
        self.classes: dict[int, int] = {}
        self.validation_failures: dict[str, int] = {}  # protocol → requests rejected as invalid
        self.key_refusals: dict[tuple[str, str], int] = {}  # (reason, protocol) → requests refused for their API key
        self.rpcs: dict[tuple[str, str], int] = {}  # (/package.Service/Method, gRPC code) → unary RPCs handled
        self.rpc_latency: dict[str, Latencies] = {}  # /package.Service/Method → their durations
        self.model: ModelCard | None = None  # once loaded and checked
        self.loads: dict[tuple[str, str], int] = {}  # (trigger, result) → model loads (dataplane/repository.py)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

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
        classes = CounterMetricFamily("predicted_class", "Predictions by class of the target.", labels=["class"])
        for label, count in sorted(self.classes.items()):
            classes.add_metric([str(label)], count)
        failures = CounterMetricFamily("validation_failures", "Requests rejected as invalid, by protocol.", labels=["protocol"])
        for protocol, count in self.validation_failures.items():
            failures.add_metric([protocol], count)
        refusals = CounterMetricFamily("api_key_refusals", "Requests refused for their API key, by reason (missing, "
                                       "malformed, unknown: 401; forbidden: 403) and protocol.", labels=["reason", "protocol"])
        for (reason, protocol), count in self.key_refusals.items():
            refusals.add_metric([reason, protocol], count)
        model = self.model
        info = GaugeMetricFamily("model_info", "The loaded model (value 1).", labels=["name", "version", "sha256"])
        if model is not None:
            info.add_metric([model.name, model.version, model.sha256 or ""], 1)
        ready = GaugeMetricFamily("model_ready", "1 when the model is loaded and checked.", value=int(model is not None))
        loads = CounterMetricFamily("model_loads", "Model loads by trigger (start, api: the repository API, poll) and "
                                    "result (ok, failed: the model served before still serves).", labels=["trigger", "result"])
        for (trigger, result), count in sorted(self.loads.items()):
            loads.add_metric([trigger, result], count)
        yield loads
        rows = CounterMetricFamily("predicted_rows", "Rows predicted.", value=self.rows)
        yield from (requests, latency, inference, rows, classes, failures, refusals, info, ready, *self.collect_rpcs(),
                    *self.collect_load())

    def collect_rpcs(self) -> Iterator[Metric]:
        """gRPC's unary RPCs, under the names and labels of grpc-ecosystem's interceptors
        (``grpc_server_handled_total``, ``grpc_server_handling_seconds``), which dashboards expect."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        handled = CounterMetricFamily("grpc_server_handled", "gRPC RPCs completed, by method and code (every unary "
                                      "one, and streaming ones refused for their API key).",
                                      labels=["grpc_service", "grpc_method", "grpc_code"])
        for (path, code), count in self.rpcs.items():
            handled.add_metric([*service_and_method(path), code], count)
        seconds = HistogramMetricFamily("grpc_server_handling_seconds", "gRPC RPC latency by method (those handled).",
                                        labels=["grpc_service", "grpc_method"])
        for path, latencies in self.rpc_latency.items():
            seconds.add_metric(list(service_and_method(path)), latencies.cumulative(), latencies.sum)
        yield from (handled, seconds)

    def collect_load(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        load = self.load
        shed = CounterMetricFamily("shed_requests", "Requests answered 503 for load, by reason: memory (the budget of "
                                   "requests in flight was full; refused unread) or queue (waited past MAX_QUEUE_SECONDS).",
                                   labels=["reason"])
        shed.add_metric(["memory"], load.refused_memory)
        shed.add_metric(["queue"], load.shed_queue)
        yield shed
        yield GaugeMetricFamily("inflight_bytes", "Bytes charged to the requests in flight (MEMORY_BUDGET_BYTES bounds it).",
                                value=load.held)
        yield GaugeMetricFamily("inflight_bytes_peak", "The most bytes requests in flight have held at once.", value=load.peak)
        yield GaugeMetricFamily("queued_requests", "Requests whose bodies have come and whose work has not started: "
                                "the event loop starts it in a turn to come, or the work queue holds it.", value=load.queued)


class Metrics:
    def __init__(self, load: Counts) -> None:
        self.serving = Serving(load)

    @cached_property
    def registry(self) -> CollectorRegistry:
        """prometheus_client's registry of these metrics, built on first use (the first scrape)."""
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
        registry.register(self.serving)
        return registry

    @property
    def content_type(self) -> str:
        from prometheus_client import CONTENT_TYPE_LATEST

        return CONTENT_TYPE_LATEST

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        tally(self.serving.requests, (route, method, status), self.serving.latency, route, seconds)

    def observe_rpc(self, path: str, code: str, seconds: float, key_refusal: str | None = None) -> None:
        """One gRPC call ``/package.Service/Method`` ended with ``code`` (OK, INVALID_ARGUMENT...):
        every unary one, and a streaming one refused for its API key (``key_refusal``: why)."""
        tally(self.serving.rpcs, (path, code), self.serving.rpc_latency, path, seconds)
        if key_refusal is not None:
            self.count_key_refusal(key_refusal, "grpc")

    def observe_inference(self, labels: np.ndarray, seconds: float) -> None:
        """One successful call of the model: its duration, its rows and the classes it predicted."""
        serving = self.serving
        serving.inference.observe(seconds)
        serving.rows += len(labels)
        classes = serving.classes
        for label, count in count_labels(labels):
            classes[label] = classes.get(label, 0) + count

    def count_key_refusal(self, reason: str, protocol: str) -> None:
        """A request refused for its API key: ``reason`` is the refusal's (dataplane/access.py)."""
        refusals = self.serving.key_refusals
        refusals[reason, protocol] = refusals.get((reason, protocol), 0) + 1

    def count_validation_failure(self, protocol: str) -> None:
        failures = self.serving.validation_failures
        failures[protocol] = failures.get(protocol, 0) + 1

    def set_model(self, card: ModelCard | None) -> None:
        """The model served now (None: none, unloaded or failed)."""
        self.serving.model = card

    def count_load(self, trigger: str, result: str) -> None:
        loads = self.serving.loads
        loads[trigger, result] = loads.get((trigger, result), 0) + 1

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def tally(counts: dict[Any, int], key: Any, latency: dict[str, Latencies], route: str, seconds: float) -> None:
    """One request (or RPC) counted under ``key`` and timed under its ``route``."""
    counts[key] = counts.get(key, 0) + 1
    latencies = latency.get(route)
    if latencies is None:
        latencies = latency[route] = Latencies()
    latencies.observe(seconds)


def service_and_method(path: str) -> tuple[str, str]:
    """``/package.Service/Method`` → (``package.Service``, ``Method``)."""
    service, _, method = path.lstrip("/").partition("/")
    return service, method


def count_labels(labels: np.ndarray) -> list[tuple[int, int]]:
    """(label, count) for the labels predicted by one call."""
    if len(labels) <= SMALL_BATCH:
        return [(label, 1) for label in labels.tolist()]
    return [(label, count) for label, count in enumerate(np.bincount(labels).tolist()) if count]  # labels are class indices
