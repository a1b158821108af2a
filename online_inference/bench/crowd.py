"""A crowd of large, slow uploads: the clients of the memory budget's test and of ``make bench``.

Each client opens its own connection and sends ``POST /predict`` with a body of ``ROWS`` random
valid rows (:mod:`bodies`), padded with JSON's whitespace to ``BODY_BYTES`` (just under
``MAX_BODY_BYTES``), in ``PIECE``-byte pieces spread over ``UPLOAD_SECONDS``: in the instances
form, the data form, and the data form chunked, in turn. Half the clients read an early answer
as soon as it comes (as curl does), half only after sending their whole body (as most HTTP
libraries do). Every outcome is classified: ``200`` (with every row's prediction), ``503`` (with
``Retry-After``), or a failure by what the client saw.
"""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from online_inference.bench.bodies import data_body, instances_body, padded, random_rows
from online_inference.card import ModelCard
from online_inference.devtools.procfs import children, status_kb

DEPLOYMENT = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes" / "deployment.yaml"
ROWS = 10_000
BODY_BYTES = 7_500_000
UPLOAD_SECONDS = 6.0
PIECE = 64 * 1024
BUCKET_S = 0.1


def pod_memory_limit_mb() -> float:
    """The Deployment's container memory limit (``limits: memory: NNNMi``), in MB: what a crowd
    must stay within."""
    text = DEPLOYMENT.read_text()
    limits = text[text.index("limits:"):]
    value = limits[limits.index("memory:") + len("memory:"):].split()[0]
    if not value.endswith("Mi"):
        raise ValueError(f"the Deployment's memory limit {value!r} is not in Mi")
    return float(value[:-2]) * 1.048576


def bodies(card: ModelCard, seed: int = 29) -> dict[str, bytes]:
    """The instances form and the data form of the same random valid rows, each padded to
    ``BODY_BYTES`` with JSON's whitespace."""
    rows = random_rows(card, ROWS, np.random.default_rng(seed))
    return {"instances": padded(instances_body(card, rows), BODY_BYTES), "data": padded(data_body(card, rows), BODY_BYTES)}


def head(framing: str, length: int) -> bytes:
    size = "Transfer-Encoding: chunked" if framing == "chunked" else f"Content-Length: {length}"
    return f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{size}\r\n\r\n".encode()


def pieces(framing: str, body: bytes) -> list[bytes]:
    parts = [body[i:i + PIECE] for i in range(0, len(body), PIECE)]
    if framing == "chunked":
        return [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts] + [b"0\r\n\r\n"]
    return parts


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += receive(sock)
    answer_head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in answer_head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += receive(sock)
    return answer_head + b"\r\n\r\n" + rest[:length]


def receive(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the connection closed before the whole answer")
    return chunk


@dataclass
class Upload:
    framing: str
    body: bytes
    reads_early: bool
    outcome: str = "not run"
    done_s: float = math.nan  # since the crowd's start

    def run(self, address: tuple[str, int], start: float) -> None:
        try:
            with socket.create_connection(address, timeout=60) as sock:
                self.outcome = self.classify(self.send(sock, start))
        except TimeoutError:
            self.outcome = "timeout"
        except ConnectionError as error:  # reset, or closed before the whole answer
            self.outcome = f"failed: {type(error).__name__}"
        self.done_s = time.monotonic() - start

    def send(self, sock: socket.socket, start: float) -> bytes:
        parts = pieces(self.framing, self.body)
        sock.sendall(head(self.framing, len(self.body)))
        for index, part in enumerate(parts):
            if self.reads_early and select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body was all sent: read it, as curl does
            time.sleep(max(0.0, start + UPLOAD_SECONDS * index / len(parts) - time.monotonic()))  # pacing: a slow upload
            sock.sendall(part)
        return read_answer(sock)

    def classify(self, answer: bytes) -> str:
        status = answer.split(b" ", 2)[1].decode()
        if status == "200":
            return "200" if answer.count(b'"probability"') == ROWS else "200 without every row"
        if status == "503":
            return "503" if b"\r\nretry-after: " in answer.lower() else "503 without Retry-After"
        return f"status {status}"


def crowd(card: ModelCard, clients: int) -> list[Upload]:
    forms = bodies(card)
    kinds = [("content-length", forms["instances"]), ("content-length", forms["data"]), ("chunked", forms["data"])]
    return [Upload(*kinds[i % 3], reads_early=i % 2 == 0) for i in range(clients)]


def run(url: str, uploads: list[Upload], pid: int | None = None) -> list[tuple[float, float]]:
    """Run ``uploads`` at once against ``url``'s host and port; the server's RSS (VmRSS of ``pid``
    and its children, MB) every :data:`BUCKET_S` meanwhile, as (seconds, MB)."""
    address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
    start = time.monotonic() + 0.5
    threads = [threading.Thread(target=u.run, args=(address, start), daemon=True) for u in uploads]
    samples: list[tuple[float, float]] = []
    finished = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(pid, start, samples, finished), daemon=True)
    if pid is not None:
        sampler.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(UPLOAD_SECONDS + 90)
    time.sleep(1.0)  # pacing: a second of the service after the crowd, in the samples
    finished.set()
    if pid is not None:
        sampler.join(5)
    return samples


def sample_rss(pid: int, start: float, samples: list[tuple[float, float]], finished: threading.Event) -> None:
    while not finished.wait(BUCKET_S):
        samples.append((time.monotonic() - start, sum(status_kb(p, "VmRSS") for p in (pid, *children(pid))) / 1024))


def series(uploads: list[Upload], samples: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """Per :data:`BUCKET_S`, in the shape of ``loadresult.Result.series`` (``charts.draw_timeline``):
    answers by kind and the upload's time to its answer, and the server's RSS."""
    end = max([s for s, _ in samples] + [u.done_s for u in uploads if not math.isnan(u.done_s)] + [0.0])
    buckets: list[dict[str, Any]] = [{"t_s": round(b * BUCKET_S, 3), "ok": 0, "shed": 0, "failures": 0, "rss_mb": None,
                                      "latencies": []} for b in range(int(end / BUCKET_S) + 1)]
    for upload in uploads:
        if math.isnan(upload.done_s) or upload.done_s < 0:
            continue
        bucket = buckets[int(upload.done_s / BUCKET_S)]
        kind = "ok" if upload.outcome == "200" else "shed" if upload.outcome == "503" else "failures"
        bucket[kind] += 1
        if kind == "ok":
            bucket["latencies"].append(upload.done_s * 1000)
    for t, mb in samples:
        if t >= 0:
            bucket = buckets[int(t / BUCKET_S)]
            bucket["rss_mb"] = max(mb, bucket["rss_mb"] or 0.0)
    for bucket in buckets:
        latencies = sorted(bucket.pop("latencies"))
        bucket["p50_ms"] = latencies[len(latencies) // 2] if latencies else None
        bucket["p99_ms"] = latencies[math.ceil(0.99 * len(latencies)) - 1] if latencies else None
    return buckets
