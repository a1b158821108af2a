"""Spec: a stop loses no request. 16 clients connect over ~50 ms, each sending a 10,000-row body;
SIGTERM comes ~50 ms after the first connect, once all have connected. Every one of them is
answered 200, and so are requests sent, once the server has closed its listener, on connections
from before the stop: one kept alive after an answer, one that had sent nothing yet;
``/health`` answers 503 ``draining`` meanwhile; the process exits 0 within the grace period.
(A request is "after the signal" once the server says it is draining: `docker stop` takes a while
to deliver its signal, so the test waits for that answer, not for a set time.)

Every failure a client sees counts: a reset, a connection closed before the answer, a timeout.
No client here connects after the stop, so a refused connection counts too. (`docker stop` on each
image runs the same scenario: tests/docker/test_docker_stop.py.)"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from online_inference.bench.server import serve
from online_inference.tests.helpers import bundled_card, read_response, valid_row

CARD = bundled_card()
BODY = json.dumps({"features": CARD.feature_names, "data": [valid_row(CARD)] * 10_000}).encode()
PREDICT = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n").encode()
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
CLIENTS = 16
SPREAD = 0.05  # seconds over which the clients connect; the stop comes this long after the first
GRACE = 10


@dataclass
class Client:
    """One client: when it connected, and the answer it read or the failure it saw."""

    connected: float | None = None
    answer: bytes = b""
    failure: str | None = None

    def status(self) -> int | None:
        return int(self.answer.split(b" ")[1]) if self.answer.startswith(b"HTTP/1.1 ") else None


def upload(address: tuple[str, int], delay: float, client: Client) -> None:
    time.sleep(delay)  # pacing: the clients connect over SPREAD
    try:
        with socket.create_connection(address, timeout=30) as sock:
            client.connected = time.monotonic()
            sock.sendall(PREDICT + BODY)
            client.answer = read_response(sock)
    except (OSError, AssertionError) as error:  # reset, refused, timed out, closed before the answer
        client.failure = repr(error)


def kept_alive(address: tuple[str, int]) -> socket.socket:
    """A connection that has had one answer and stays open, idle, across the stop."""
    sock = socket.create_connection(address, timeout=30)
    sock.sendall(HEALTH)
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    return sock


def until_draining(sock: socket.socket, deadline: float) -> bytes:
    """``GET /health`` on a kept-alive connection until the answer is not 200 (the stop has reached
    the server: `docker stop` takes a while to deliver its signal), or the deadline; the last answer."""
    while True:
        sock.sendall(HEALTH)
        answer = read_response(sock)
        if not answer.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
            return answer
        time.sleep(0.005)  # polling the server's readiness, until the deadline


def until_refused(address: tuple[str, int], deadline: float) -> bool:
    """Whether a new connection is turned away before the deadline: the server has closed its
    listener, and in the same step asked each of its connections to shut down. These probes connect
    after the stop: one that reached the listener's queue as it closed is reset rather than
    refused, which turns it away just the same (seen once in CI, in the full image)."""
    while time.monotonic() < deadline:
        try:
            socket.create_connection(address, timeout=1).close()
        except (ConnectionRefusedError, ConnectionResetError):
            return True
        time.sleep(0.005)  # polling the listener, until the deadline
    return False


def check_drain(url: str, stop: Callable[[], int]) -> None:
    """The scenario of this module against the service at ``url``; ``stop`` stops it and returns its exit status."""
    host, port = url.removeprefix("http://").split(":")
    address = (host, int(port))
    idle_health = kept_alive(address)
    clients = [Client() for _ in range(CLIENTS)]
    threads = [threading.Thread(target=upload, args=(address, SPREAD * i / CLIENTS, c), daemon=True) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while not all(c.connected or c.failure for c in clients) and time.monotonic() < deadline:
        time.sleep(0.001)  # polling the clients' own state, until the deadline
    first = min(c.connected for c in clients if c.connected) if any(c.connected for c in clients) else time.monotonic()
    time.sleep(max(0.0, first + SPREAD - time.monotonic()))  # pacing: the stop, SPREAD after the first connect
    idle_predict = kept_alive(address)  # idle across the stop (its idle deadline is seconds away)
    silent = socket.create_connection(address, timeout=30)  # connected before the stop, its request sent after
    exit_status: list[int] = []
    stopper = threading.Thread(target=lambda: exit_status.append(stop()), daemon=True)
    signalled = time.monotonic()
    stopper.start()
    health = until_draining(idle_health, signalled + 5)
    assert until_refused(address, signalled + 5), "the listener never closed"
    idle_predict.sendall(PREDICT + BODY)  # both sent once the server has shut its connections down
    silent.sendall(PREDICT + BODY)
    for thread in threads:
        thread.join(60)
    predicted, late = read_response(idle_predict), read_response(silent)
    stopper.join(GRACE + 15)
    assert [c.failure for c in clients if c.failure] == [], "a client that connected before the stop failed"
    assert [c.status() for c in clients] == [200] * CLIENTS
    assert all(c.connected is not None and c.connected < signalled for c in clients)
    assert health.startswith(b"HTTP/1.1 503 ") and health.endswith(b'{"status":"draining"}')
    for answer in (predicted, late):
        assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\nconnection: close\r\n" in answer
    assert exit_status == [0]
    assert time.monotonic() - signalled < GRACE + 5
    for sock in (idle_health, idle_predict, silent):
        sock.close()


def test_sigterm_answers_every_client_that_connected_before_it_and_exits_0() -> None:
    with serve("onnx", cpus="0,1", env={"TIMEOUT_GRACEFUL_SHUTDOWN": str(GRACE)}) as service:
        def sigterm() -> int:
            service.process.send_signal(signal.SIGTERM)
            return service.process.wait(GRACE + 10)

        check_drain(service.url, sigterm)
