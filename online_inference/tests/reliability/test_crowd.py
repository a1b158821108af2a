"""Spec: a crowd cannot take the service down. 96 clients upload large bodies slowly, all at
once (``online_inference.bench.crowd``): in the instances form and the data form (each ~7.5 MB:
10,000 rows of full-precision values, padded with JSON's whitespace up to just under
MAX_BODY_BYTES), and chunked; half read an early answer as soon as it comes (as curl does), half
only after sending their whole body (as most HTTP libraries do). Every client is answered 200
(with every row's prediction) or 503 with ``Retry-After``; the server's peak RSS stays within the
Deployment's memory limit; it is ready afterwards, and gives the burst's memory back (within
32 MB of idle: without malloc_trim, 45-55 MB stay).

Every failure a client sees counts: a reset, a connection closed before the answer, a timeout,
a status other than 200 and 503, a 503 without ``Retry-After``."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from online_inference.bench import crowd
from online_inference.bench.server import serve
from online_inference.tests.helpers import bundled_card, metric_value

CLIENTS = 96

pytestmark = pytest.mark.slow


def test_a_crowd_of_large_slow_uploads_is_answered_within_the_pods_memory() -> None:
    with serve("onnx", cpus="0") as server:
        idle = server.rss_mb()
        uploads = crowd.crowd(bundled_card(), CLIENTS)
        crowd.run(server.url, uploads)
        outcomes = Counter(u.outcome for u in uploads)
        failures = {k: n for k, n in outcomes.items() if k not in ("200", "503")}
        peak, limit, after = server.peak_rss_mb(), crowd.pod_memory_limit_mb(), server.rss_mb()
        assert failures == {}, f"clients saw failures: {dict(outcomes)}"
        assert outcomes["200"] >= 1, dict(outcomes)  # the budget admits some: 3 at a time by its charges
        assert peak <= limit, f"peak RSS {peak:.0f} MB over the pod's limit {limit:.0f} MB ({dict(outcomes)})"
        assert httpx.get(server.url + "/health").json()["status"] == "ready"
        assert metric_value(server.url, "shed_requests_total", reason="memory") == outcomes["503"]
        assert metric_value(server.url, "inflight_bytes") < 1_000_000  # this scrape's own charge
        assert after - idle < 32, f"RSS {idle:.0f} MB idle, {peak:.0f} MB at the peak, {after:.0f} MB after"
