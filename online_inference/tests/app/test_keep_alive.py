"""Spec: a keep-alive connection idle for TIMEOUT_KEEP_ALIVE seconds since its last answer is
closed; one that keeps sending requests, or whose request is being answered, is not."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from online_inference.app.protocol import ServiceProtocol
from online_inference.tests.helpers import live_server, read_response

KEEP_ALIVE = 1  # seconds
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
SLOW = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers at once; ``/slow`` after longer than the keep-alive timeout."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(KEEP_ALIVE * 1.5)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with live_server(app, ready_path="/health", http=ServiceProtocol, timeout_keep_alive=KEEP_ALIVE) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=KEEP_ALIVE * 3) as sock:
        sock.sendall(HEALTH)
        assert read_response(sock).endswith(b"ok")
        started = time.monotonic()
        assert closed(sock)
        assert KEEP_ALIVE * 0.9 <= time.monotonic() - started <= KEEP_ALIVE * 2.5


def test_a_connection_that_keeps_asking_stays_open(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=KEEP_ALIVE * 3) as sock:
        for _ in range(6):  # 2.4 s: more than twice the timeout, never idle for as long as it
            sock.sendall(HEALTH)
            assert read_response(sock).endswith(b"ok")
            time.sleep(KEEP_ALIVE * 0.4)


def test_a_request_answered_after_longer_than_the_timeout_keeps_its_connection(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=KEEP_ALIVE * 3) as sock:
        sock.sendall(HEALTH)
        assert read_response(sock).endswith(b"ok")
        time.sleep(KEEP_ALIVE * 0.6)
        sock.sendall(SLOW)  # in progress when the first answer's timer fires
        assert read_response(sock).endswith(b"ok")
        sock.sendall(HEALTH)
        assert read_response(sock).endswith(b"ok")
