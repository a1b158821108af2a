"""Spec: the open-loop generator (``bench/openloop.py``) offers arrivals on the clock whatever the
server does, measures latency from each arrival's scheduled time, and classifies every outcome a
client sees, against small servers on 127.0.0.1: one that answers 200, one slower than the offered
rate, one that delays every answer, one that resets, one that never answers, ones that shed with
and without Retry-After, one that closes after each answer, one that answers chunked, and a port
that refuses. Each run takes a second or two."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from online_inference.bench.openloop import capacity, run
from online_inference.bench.wire import http_request, parse_head

BODY = b'{"ok": true}'


def answer(status: str, *headers: str, body: bytes = BODY) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Content-Type: application/json", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"


@dataclass
class Stats:
    connections: int = 0
    requests: int = 0


class LocalProtocol(asyncio.Protocol):
    """Reads whole requests (head and Content-Length body) and reacts as its ``mode`` says."""

    def __init__(self, mode: str, stats: Stats, clock: dict[str, float], delay: float):
        self.mode, self.stats, self.clock, self.delay = mode, stats, clock, delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.stats.requests += 1
            self.react(head.split(b" ")[1])

    def react(self, path: bytes) -> None:
        assert self.transport is not None
        loop, transport = asyncio.get_running_loop(), self.transport
        mode = {b"/ok": "ok", b"/shed": "shed"}.get(path, self.mode)
        if mode == "ok":
            transport.write(answer("200 OK"))
        elif mode == "shed":
            transport.write(answer("503 Service Unavailable", "Retry-After: 1", body=b'{"error": "overloaded", "problems": []}'))
        elif mode == "shed_bare":
            transport.write(answer("503 Service Unavailable"))
        elif mode == "missing":
            transport.write(answer("404 Not Found"))
        elif mode == "chunked":
            transport.write(CHUNKED)
        elif mode == "close":
            transport.write(answer("200 OK", "Connection: close"))
            transport.close()
        elif mode == "reset":
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        elif mode == "delay":  # every answer after ``delay``, concurrently
            loop.call_later(self.delay, transport.write, answer("200 OK"))
        elif mode == "slow":  # one answer every ``delay``, in order: a server of 1 / delay requests/s
            self.clock["free"] = max(loop.time(), self.clock.get("free", 0.0)) + self.delay
            loop.call_at(self.clock["free"], transport.write, answer("200 OK"))
        # "never": reads, never answers


@contextmanager
def local_server(mode: str, delay: float = 0.0) -> Iterator[tuple[str, Stats]]:
    """A server on 127.0.0.1 (a port the system chooses) in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    stats, clock = Stats(), dict[str, float]()
    server = loop.run_until_complete(loop.create_server(lambda: LocalProtocol(mode, stats, clock, delay), "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", stats
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        server.close()
        loop.close()


def post(url: str, path: str = "/predict") -> bytes:
    return http_request(url + path, b'{"instances": []}')


def timed_run(url: str, requests: list[bytes], rate: float, duration: float, **options):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = run(url, requests, rate, duration, **options)
    return result, time.monotonic() - started


@pytest.mark.parametrize(("mode", "outcome"), [("ok", "200"), ("shed", "503_retry_after"), ("shed_bare", "503_no_retry_after"),
                                               ("missing", "404"), ("chunked", "200"), ("close", "200"), ("reset", "reset")])
def test_each_answer_is_classified(mode: str, outcome: str) -> None:
    with local_server(mode) as (url, stats):
        result, elapsed = timed_run(url, [post(url)], rate=100, duration=0.5, timeout_s=2.0)
    summary = result.summary()
    assert summary["outcomes"] == {outcome: 50}
    assert stats.requests == 50 and elapsed < 2.0
    if mode == "close":
        assert stats.connections == 50  # connection: close honoured: a new connection for each request
    elif mode in ("ok", "shed", "chunked"):
        assert stats.connections <= 5  # kept alive and reused
    if outcome.startswith("503"):
        assert summary["shed_fraction"] == 1.0 and summary["latency_503"]["p99_ms"] is not None
        assert summary["latency_200"]["p50_ms"] is None
    if mode == "reset":
        assert summary["failures"]["reset"] == 50


def test_no_answer_is_a_timeout_measured_from_the_scheduled_time() -> None:
    with local_server("never") as (url, _):
        result, elapsed = timed_run(url, [post(url)], rate=50, duration=0.4, timeout_s=0.3)
    r = result.records
    assert result.summary()["outcomes"] == {"timeout": 20}
    assert all(0.3 <= done - scheduled < 0.4 for done, scheduled in zip(r.done, r.scheduled))
    assert elapsed < 0.4 + 0.3 + 0.5


def test_a_closed_port_is_refused() -> None:
    with socket.socket() as bound:  # bound, not listening: connecting is refused, and no one else gets the port
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        result = run(url, [post(url)], 50, 0.2, timeout_s=1.0)
    assert result.summary()["outcomes"] == {"refused": 10}
    assert result.summary()["failures"] == {"reset": 0, "timeout": 0, "refused": 10, "other": 0}


@pytest.mark.parametrize("mode", ["ok", "slow", "never"])
def test_arrivals_are_on_the_clock_whatever_the_server_does(mode: str) -> None:
    rate, duration = 200, 1.0
    with local_server(mode, delay=0.02) as (url, _):  # slow: 50 requests/s offered 200
        result, elapsed = timed_run(url, [post(url)], rate, duration, timeout_s=0.5, max_connections=64)
    r = result.records
    assert abs(result.offered - rate * duration) <= 1
    assert r.scheduled == [i / rate for i in range(result.offered)]
    assert elapsed < duration + 0.5 + 0.5  # the last arrivals wait at most the timeout
    lags = result.summary()["dispatch_lag_ms"]
    assert lags["p99"] is not None and lags["p99"] < 50  # each arrival was sent at its time (or queued, counted)
    assert sum(1 for o in r.outcome if o) == result.offered  # every arrival has an outcome


def test_latency_grows_when_the_server_is_slower_than_the_offered_rate() -> None:
    with local_server("slow", delay=0.02) as (url, _):  # 50 requests/s, offered 100
        result = run(url, [post(url)], 100, 1.0, timeout_s=5.0, max_connections=256)
    r, summary = result.records, result.summary()
    assert summary["outcomes"] == {"200": 100}
    latencies = [d - s for d, s in zip(r.done, r.scheduled)]
    assert latencies[-1] > 0.8 and latencies[0] < 0.1  # the 100th answered at about 2 s, scheduled at 0.99 s
    assert summary["served_rate_per_s"] < 60
    assert summary["latency_200"]["max_ms"] > 800


def test_an_arrival_with_no_free_connection_waits_and_counts_from_its_scheduled_time() -> None:
    with local_server("delay", delay=0.2) as (url, _):  # one connection, each answer 0.2 s: a queue in the generator
        result = run(url, [post(url)], 20, 0.5, timeout_s=5.0, max_connections=1)
    r, summary = result.records, result.summary()
    assert summary["outcomes"] == {"200": 10} and summary["generator_overflow"] == 9 and summary["peak_connections"] == 1
    for i, (done, scheduled) in enumerate(zip(r.done, r.scheduled)):
        assert done - scheduled == pytest.approx(0.2 + 0.15 * i, abs=0.1)  # from the schedule: not 0.2 s from the send


def test_a_queued_arrival_that_times_out_is_counted_unsent() -> None:
    with local_server("never") as (url, _):  # one connection, 200 arrivals/s: most time out waiting for it
        result = run(url, [post(url)], 200, 0.3, timeout_s=0.2, max_connections=1)
    summary = result.summary()
    assert summary["outcomes"] == {"timeout": 60} and summary["generator_overflow"] == 59
    assert summary["unsent"] >= 30  # timed out waiting for the connection: never sent


def test_the_mix_is_round_robin_or_seeded() -> None:
    with local_server("ok") as (url, _):
        requests = [post(url, "/ok"), post(url, "/shed")]
        alternating = run(url, requests, 100, 0.4, timeout_s=2.0)
        seeded = [run(url, requests, 100, 0.4, timeout_s=2.0, seed=7).records.request for _ in range(2)]
    assert alternating.summary()["outcomes"] == {"200": 20, "503_retry_after": 20}
    assert alternating.records.request[:4] == [0, 1, 0, 1]
    assert seeded[0] == seeded[1] and seeded[0] != alternating.records.request


def test_the_result_is_json_with_a_time_series_and_the_rss() -> None:
    with local_server("ok") as (url, _):
        result = run(url, [post(url)], 100, 1.0, timeout_s=2.0, rss_pid=os.getpid())
    data = json.loads(json.dumps(result.to_dict(records=True)))
    assert data["peak_rss_mb"] > 0 and data["bucket_s"] == 0.1
    series = data["series"]
    assert len(series) >= 10 and sum(b["ok"] for b in series) == 100
    assert all(b["rss_mb"] for b in series[1:9]) and all(b["p99_ms"] is not None for b in series[1:9])
    assert {"t_s", "ok", "shed", "failures", "p50_ms", "p99_ms", "rss_mb"} == set(series[0])
    assert len(data["records"]["outcome"]) == 100 and data["offered_rate_per_s"] == 100


@pytest.mark.parametrize("tool", ["python", "wrk"])
def test_capacity_measures_the_closed_loop(tool: str) -> None:
    with local_server("slow", delay=0.01) as (url, _):  # 100 requests/s, whatever the connections
        measured = capacity(url, post(url), connections=4, seconds=1.0, tool=tool)
    assert 70 < measured < 130


def test_answer_heads_are_read() -> None:
    head = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 3")
    assert head.close and head.length == 3
    head = parse_head(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\nConnection: close\r\ncontent-length: 0")
    assert head.retry_after and head.close and head.length == 0
    head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain")
    assert head.length is None and head.close  # a body to the close
    assert http_request("http://127.0.0.1:9/predict?x=1", b"{}") == (
        b"POST /predict?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


def test_a_run_ends_even_if_an_arrival_is_never_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    from online_inference.bench.openloop import Generator

    monkeypatch.setattr(Generator, "expire", lambda self: None)  # the bug the safety net is for: no timeout fires
    with local_server("never") as (url, _):
        result, elapsed = timed_run(url, [post(url)], 20, 0.2, timeout_s=0.2)
    assert result.summary()["outcomes"] == {"lost": 4} and result.lost_where == {"connection": 4}
    assert elapsed < 0.2 + 0.2 + 2.0 + 0.5


def test_the_command_prints_the_summary_and_writes_the_result(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from online_inference.bench.openloop import main

    body, output = tmp_path / "body.json", tmp_path / "result.json"
    body.write_bytes(b'{"instances": []}')
    with local_server("shed") as (url, _):
        assert main(["--url", url + "/predict", "--rate", "50", "--duration", "0.4", "--timeout", "1", "--body", str(body),
                     "--output", str(output)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["outcomes"] == {"503_retry_after": 20} and "series" not in printed
    assert len(json.loads(output.read_text())["series"]) >= 4
