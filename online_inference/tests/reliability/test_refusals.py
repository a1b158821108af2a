"""Spec: a request the budget cannot take now is answered 503 with ``Retry-After`` at once, its
body is dropped as it arrives, and its connection then serves the client's next request (no
reconnection for the retry). One that could never fit is answered 413 and its connection
closed without cutting that answer; whatever the client sends after it, in the same write or
later, is dropped, never served behind the refusal; a body that arrives after its request's
answer is dropped too; and a ``Content-Length`` with spaces around it is charged like any
other. Against the real process, whose log must stay free of tracebacks."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from online_inference.app.http.body import body_framing
from online_inference.bench.server import Service, serve
from online_inference.tests.helpers import assert_nothing_charged, metric_value, read_response

BUDGET = 64 * 1024 * 1024  # the smallest allowed: a body of 8 MB can never fit what it leaves for requests
MAX_BODY = 1024 * 1024
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def post_head(length: bytes) -> bytes:
    return b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n"


@pytest.fixture(scope="module")
def server() -> Iterator[Service]:
    with serve("onnx", cpus="0,1", env={"MEMORY_BUDGET_BYTES": str(BUDGET), "MAX_BODY_BYTES": str(MAX_BODY)}) as service:
        yield service
        assert_nothing_charged(service.url)  # after every test of the module


def exchange(server: Service, data: bytes) -> bytes:
    """Send ``data``, then read until the server closes (within 10 s)."""
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_spaces_around_a_declared_length_do_not_hide_it() -> None:
    assert body_framing([(b"content-length", b" 8000000 ")]) == (8_000_000, False)


@pytest.mark.parametrize("length", [b"8000000", b"8000000 "])
def test_a_refusal_is_answered_and_what_follows_it_is_not_served(server: Service, length: bytes) -> None:
    answers = exchange(server, post_head(length) + b"{" + HEALTH)
    assert answers.startswith(b"HTTP/1.1 413 ") and answers.count(b"HTTP/1.1 ") == 1, answers[:300]
    assert b'"error":' in answers and b"MEMORY_BUDGET_BYTES" in answers


def test_a_body_that_comes_after_its_answer_is_dropped(server: Service) -> None:
    """Over MAX_BODY_BYTES (1 MiB here) but within the budget: 413 at once; the client sends its body anyway."""
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(post_head(b"2000000"))
        answer = read_response(sock)
        for _ in range(16):
            sock.sendall(b" " * 65536)
        rest = b""
        while chunk := sock.recv(65536):  # the server closes once its 413 is out and the rest dropped
            rest += chunk
    assert answer.startswith(b"HTTP/1.1 413 ") and b"MAX_BODY_BYTES" in answer, answer[:300]
    assert b"HTTP/1.1 " not in rest, rest[:300]


@contextlib.contextmanager
def refused_for_memory(server: Service, head: bytes) -> Iterator[tuple[socket.socket, bytes]]:
    """Heads of 1 MB bodies held open until the budget is full, then ``head``: its socket and the
    answer it got before sending its body."""
    address = ("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    with contextlib.ExitStack() as holders:
        for _ in range(64):  # the budget holds a few such heads: far fewer than 64
            sock = holders.enter_context(socket.create_connection(address, timeout=10))
            sock.sendall(head)
            sock.settimeout(0.5)  # an answer before the body is a refusal; a held head gets none
            try:
                answer = read_response(sock)
            except TimeoutError:  # no answer: this head is held, open the next
                continue
            sock.settimeout(10)
            assert answer.startswith(b"HTTP/1.1 503 ") and b"\r\nretry-after: " in answer.lower(), answer[:300]
            assert b"MEMORY_BUDGET_BYTES" in answer
            yield sock, answer
            return
        pytest.fail("no head was refused")


def test_a_request_refused_for_memory_keeps_its_connection_for_the_retry(server: Service) -> None:
    """Answered 503 before its body is read; it sends its body anyway, then its retry on the same
    connection is served."""
    with refused_for_memory(server, post_head(b"1000000")) as (sock, answer):
        assert b"connection: close" not in answer.lower()
        sock.sendall(b" " * 1_000_000 + HEALTH)  # the body (dropped), then the next request
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    assert metric_value(server.url, "shed_requests_total", reason="memory") >= 1


def test_a_request_that_asked_to_close_is_closed_after_its_503(server: Service) -> None:
    head = post_head(b"1000000").replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    with refused_for_memory(server, head) as (sock, answer):
        assert b"connection: close" in answer.lower()
        sock.sendall(b" " * 1_000_000)  # the body: dropped until the server's close
        assert sock.recv(65536) == b""
