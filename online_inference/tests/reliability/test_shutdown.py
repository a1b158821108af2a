"""Spec: SIGTERM under load lets every in-flight request finish (0 failed) and the process exits
0 within the grace period (`docker stop` on each image: tests/docker/test_docker_stop.py)."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable

import httpx

from online_inference.bench.server import serve
from online_inference.tests.helpers import bundled_card, valid_row

CARD = bundled_card()
BODY = json.dumps({"features": CARD.feature_names, "data": [valid_row(CARD)] * 2000}).encode()
IN_FLIGHT = 10
GRACE = 5


def start_in_flight(url: str, count: int) -> list[socket.socket]:
    """Requests whose headers and half their body have reached the server: in flight for sure."""
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n").encode()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(head + BODY[: len(BODY) // 2])
        sockets.append(sock)
    time.sleep(0.3)
    return sockets


def finish(sockets: list[socket.socket]) -> list[bytes]:
    answers = []
    for sock in sockets:
        sock.sendall(BODY[len(BODY) // 2 :])
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        answers.append(b"".join(chunks))
        sock.close()
    return answers


class Load:
    """Background requests; counts HTTP answers that are not 200 (refused connections after the
    stop are new requests, not failures)."""

    def __init__(self, url: str):
        self.url, self.stop, self.bad, self.ok = url, threading.Event(), [], 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(self.url + "/predict", content=BODY, headers={"content-type": "application/json"})
                except httpx.TransportError:
                    time.sleep(0.01)
                    continue
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.bad.append(response.status_code)


def check_graceful_stop(url: str, stop: Callable[[], int]) -> None:
    load = Load(url)
    load.thread.start()
    time.sleep(0.3)
    sockets = start_in_flight(url, IN_FLIGHT)
    started = time.monotonic()
    exit_code = stop_in_background(stop)
    answers = finish(sockets)
    load.stop.set()
    load.thread.join(10)
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), [a[:60] for a in answers]
    assert json.loads(answers[0].split(b"\r\n\r\n", 1)[1])["predictions"]
    assert exit_code() == 0
    assert time.monotonic() - started < GRACE + 5
    assert load.ok > 0 and load.bad == []


def stop_in_background(stop: Callable[[], int]) -> Callable[[], int]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(stop()), daemon=True)
    thread.start()
    time.sleep(0.3)  # the stop has begun while the requests are in flight

    def wait() -> int:
        thread.join(GRACE + 10)
        return result[0]

    return wait


def test_sigterm_finishes_in_flight_requests_and_exits_0() -> None:
    with serve("onnx", cpus="0,1", env={"TIMEOUT_GRACEFUL_SHUTDOWN": str(GRACE)}) as service:
        def sigterm() -> int:
            service.process.send_signal(signal.SIGTERM)
            return service.process.wait(GRACE + 5)

        check_graceful_stop(service.url, sigterm)
