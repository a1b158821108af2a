"""Spec: a crowd cannot take the service down. 96 clients upload large bodies slowly, all at
once: in the instances form and the data form (each ~7.5 MB: 10,000 rows of full-precision
values, padded with JSON's whitespace up to just under MAX_BODY_BYTES), and chunked. Every client is
answered 200 (with every row's prediction) or 503 with ``Retry-After``; the server's peak RSS
stays within the Deployment's memory limit; it is ready afterwards, and gives the burst's memory
back (within 32 MB of idle: without malloc_trim, 45-55 MB stay). Half the clients read an early answer as soon as it comes (as curl does), half only after
sending their whole body (as most HTTP libraries do): the lingering close serves both.

Every failure a client sees counts: a reset, a connection closed before the answer, a timeout,
a status other than 200 and 503, a 503 without ``Retry-After``."""

from __future__ import annotations

import json
import random
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from online_inference.bench.server import Service, serve
from online_inference.tests.helpers import bundled_card, metric_value, read_response

CARD = bundled_card()
CLIENTS = 96
ROWS = 10_000
BODY_BYTES = 7_500_000
UPLOAD_SECONDS = 6.0
PIECE = 64 * 1024
DEPLOYMENT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "deployment.yaml"

pytestmark = pytest.mark.slow


def pod_memory_limit_mb() -> float:
    """The Deployment's container memory limit (``limits: memory: NNNMi``)."""
    text = DEPLOYMENT.read_text()
    limits = text[text.index("limits:"):]
    value = limits[limits.index("memory:") + len("memory:"):].split()[0]
    assert value.endswith("Mi"), value
    return float(value[:-2]) * 1.048576


def random_rows(seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(ROWS):
        rows.append([float(rng.choice(list(f.codes))) if f.codes else rng.uniform(f.bounds.min, f.bounds.max)
                     for f in CARD.features])
    return rows


def padded(body: bytes) -> bytes:
    return body + b" " * (BODY_BYTES - len(body))


ROWS_OF = random_rows(29)
INSTANCES = padded(json.dumps({"instances": [dict(zip(CARD.feature_names, r)) for r in ROWS_OF]}).encode())
DATA = padded(json.dumps({"features": CARD.feature_names, "data": ROWS_OF}).encode())


def head(framing: str, length: int) -> bytes:
    size = "Transfer-Encoding: chunked" if framing == "chunked" else f"Content-Length: {length}"
    return f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{size}\r\n\r\n".encode()


def pieces(framing: str, body: bytes) -> list[bytes]:
    parts = [body[i:i + PIECE] for i in range(0, len(body), PIECE)]
    if framing == "chunked":
        return [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts] + [b"0\r\n\r\n"]
    return parts


@dataclass
class Upload:
    framing: str
    body: bytes
    reads_early: bool
    outcome: str = "not run"

    def run(self, address: tuple[str, int], start: float) -> None:
        try:
            with socket.create_connection(address, timeout=60) as sock:
                self.outcome = self.classify(self.send(sock, start))
        except TimeoutError:
            self.outcome = "timeout"
        except (ConnectionError, AssertionError) as error:  # reset, or closed before the whole answer
            self.outcome = f"failed: {error!r}"

    def send(self, sock: socket.socket, start: float) -> bytes:
        parts = pieces(self.framing, self.body)
        sock.sendall(head(self.framing, len(self.body)))
        for index, part in enumerate(parts):
            if self.reads_early and select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body was all sent: read it, as curl does
            time.sleep(max(0.0, start + UPLOAD_SECONDS * index / len(parts) - time.monotonic()))  # pacing: a slow upload
            sock.sendall(part)
        return read_response(sock)

    def classify(self, answer: bytes) -> str:
        status = answer.split(b" ", 2)[1].decode()
        if status == "200":
            return "200" if answer.count(b'"probability"') == ROWS else "200 without every row"
        if status == "503":
            return "503" if b"\r\nretry-after: " in answer.lower() else "503 without Retry-After"
        return f"status {status}"


def crowd() -> list[Upload]:
    kinds = [("content-length", INSTANCES), ("content-length", DATA), ("chunked", DATA)]
    return [Upload(*kinds[i % 3], reads_early=i % 2 == 0) for i in range(CLIENTS)]


def run_crowd(server: Service, uploads: list[Upload]) -> None:
    address = ("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    start = time.monotonic() + 0.5
    threads = [threading.Thread(target=u.run, args=(address, start), daemon=True) for u in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(UPLOAD_SECONDS + 90)


def test_a_crowd_of_large_slow_uploads_is_answered_within_the_pods_memory() -> None:
    with serve("onnx", cpus="0") as server:
        idle = server.rss_mb()
        uploads = crowd()
        run_crowd(server, uploads)
        outcomes = Counter(u.outcome for u in uploads)
        failures = {k: n for k, n in outcomes.items() if k not in ("200", "503")}
        peak, limit = server.peak_rss_mb(), pod_memory_limit_mb()
        time.sleep(1)  # pacing: the burst is over; its memory is given back when the last charge is
        after = server.rss_mb()
        assert failures == {}, f"clients saw failures: {dict(outcomes)}"
        assert outcomes["200"] >= 3, dict(outcomes)
        assert peak <= limit, f"peak RSS {peak:.0f} MB over the pod's limit {limit:.0f} MB ({dict(outcomes)})"
        assert httpx.get(server.url + "/health").json()["status"] == "ready"
        assert metric_value(server.url, "shed_requests_total", reason="memory") == outcomes["503"]
        assert metric_value(server.url, "inflight_bytes") < 1_000_000  # this scrape's own charge
        assert after - idle < 32, f"RSS {idle:.0f} MB idle, {peak:.0f} MB at the peak, {after:.0f} MB after"
