"""Spec: the server's edge limits every request, against the real process: a request target over
MAX_REQUEST_TARGET_BYTES answers 414 and a header block over MAX_HEADER_BYTES 431, read no further;
a head not complete TIMEOUT_HEADERS after its first byte (a CRLF counts) answers 408; a connection
without a request for TIMEOUT_KEEP_ALIVE closes, whatever it trickles; a body not complete within
TIMEOUT_BODY answers 408; each of these closes the connection. A client that never reads cannot
grow the server's memory; ``Upgrade: h2c`` is ignored with the body intact; HEAD answers like GET."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from online_inference.bench.server import Service, serve
from online_inference.tests.helpers import assert_nothing_charged, metric_value, bundled_card, read_response, read_responses, valid_row

CARD = bundled_card()
KEEP_ALIVE, HEADERS, BODY_TIMEOUT = 1, 2, 1  # seconds
ENV = {"TIMEOUT_KEEP_ALIVE": str(KEEP_ALIVE), "TIMEOUT_HEADERS": str(HEADERS), "TIMEOUT_BODY": str(BODY_TIMEOUT),
       "MAX_REQUEST_TARGET_BYTES": "8192", "MAX_HEADER_BYTES": "16384"}
BODY = json.dumps({"features": CARD.feature_names, "data": [valid_row(CARD)]}).encode()


def predict(body: bytes = BODY, extra: bytes = b"") -> bytes:
    return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.fixture(scope="module")
def server() -> Iterator[Service]:
    with serve("onnx", cpus="0,1", env=ENV) as service:
        yield service
        assert_nothing_charged(service.url)  # after every test of the module


def connect(server: Service) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and when (seconds from now). Fails if
    it is still open after ``within`` seconds: a client timeout is not the server closing."""
    started, received = time.monotonic(), b""
    sock.settimeout(within)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:  # the server closed with a reset: what is measured
        pass
    except TimeoutError:
        raise AssertionError(f"still open after {within} s, having sent {received[:80]!r}") from None
    return received, time.monotonic() - started


def send_streaming(sock: socket.socket, head: bytes, filler: bytes, total: int) -> int:
    """Send ``head`` then up to ``total`` bytes of ``filler`` while the server reads; how many it took."""
    sent = 0
    sock.sendall(head)
    try:
        while sent < total:
            sock.sendall(filler)
            sent += len(filler)
    except (BrokenPipeError, ConnectionResetError):  # the server refused and closed: what is measured
        pass
    return sent


@pytest.mark.parametrize("kind,head,filler,status", [
    ("request target", b"GET /health?q=", b"a" * 65536, 414),
    ("header block", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * 65536, 431),
])
def test_an_oversized_head_is_refused_unread(server: Service, kind: str, head: bytes, filler: bytes, status: int) -> None:
    rss = server.rss_mb()
    with connect(server) as sock:
        sent = send_streaming(sock, head, filler, 50_000_000)
        answer, _ = until_closed(sock, 5)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()) and b"\r\nconnection: close\r\n" in answer, answer[:100]
    assert kind.split()[0].encode() in answer.lower()
    assert sent < 10_000_000, "the server kept reading"
    assert server.rss_mb() - rss < 5


def test_a_head_at_the_limits_is_served(server: Service) -> None:
    target = b"/health?q=" + b"a" * (8192 - 10)
    answer = httpx.get(server.url + target.decode(), headers={"X-Big": "a" * 15_000})
    assert answer.status_code == 200


def test_the_header_deadline_runs_from_the_first_byte_a_crlf_included(server: Service) -> None:
    with connect(server) as sock:
        sock.sendall(b"\r\n")
        first_byte = time.monotonic()
        time.sleep(HEADERS / 4)  # pacing: the head's next bytes come later than its first
        sock.sendall(b"GET /hea")  # a request has begun: the idle deadline no longer applies
        answer, _ = until_closed(sock, HEADERS * 2)
        closed = time.monotonic() - first_byte
    assert answer.startswith(b"HTTP/1.1 408 ") and b"TIMEOUT_HEADERS" in answer
    assert HEADERS * 0.9 <= closed <= HEADERS + 0.5


@pytest.mark.parametrize("after_an_answer", [False, True])
def test_an_idle_connection_closes_after_the_keep_alive_timeout_whatever_it_trickles(server: Service, after_an_answer: bool) -> None:
    with connect(server) as sock:
        if after_an_answer:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        idle_since = time.monotonic()
        sock.settimeout(0.2)
        closed = None
        while closed is None and time.monotonic() - idle_since < HEADERS * 2:
            try:
                sock.sendall(b"\r\n")
                closed = sock.recv(1) == b"" or None
            except TimeoutError:  # nothing to read yet: trickle on
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed, "the connection stayed open"
        assert KEEP_ALIVE * 0.9 <= time.monotonic() - idle_since <= KEEP_ALIVE + 0.6


def test_a_connection_that_keeps_asking_stays_open(server: Service) -> None:
    with connect(server) as sock:
        for _ in range(5):  # more than twice the timeout in all, never idle for as long as it
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(KEEP_ALIVE * 0.5)  # pacing: never idle for as long as the timeout


@pytest.mark.parametrize("path", ["/predict", "/v2/models/heart-disease-classifier/infer"])
def test_a_body_not_complete_in_time_answers_408_then_closes(server: Service, path: str) -> None:
    with connect(server) as sock:
        sock.sendall(predict().replace(b"/predict", path.encode(), 1)[:-10])
        answer, after = until_closed(sock, BODY_TIMEOUT * 3)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"TIMEOUT_BODY" in answer
    assert b"\r\nconnection: close\r\n" in answer and BODY_TIMEOUT * 0.9 <= after <= BODY_TIMEOUT + 0.5


def test_a_client_that_never_reads_cannot_grow_the_servers_memory() -> None:
    """Its own server: when the client goes, uvicorn logs the task that was waiting to write an
    answer to it (a pipelined request's task writing to the closed transport): expected here.
    The client pipelines requests and reads no answer: TCP pushes it back, and once what its
    requests hold reaches the memory budget (uvicorn parses pipelined heads ahead) it is cut off
    (an answer is still due on that connection, so no refusal can be written)."""
    with serve("onnx", cpus="0,1", env=ENV, tracebacks=True) as server:
        never_reads(server)


def never_reads(server: Service) -> None:
    row = valid_row(CARD)
    row[4] = CARD.features[4].training.max + 10  # a warning on every row: ~310 KB per answer
    request = predict(json.dumps({"features": CARD.feature_names, "data": [row] * 1000}).encode())
    for _ in range(20):  # the allocations a 1000-row answer makes, made before measuring
        assert httpx.post(server.url + "/predict", content=request.partition(b"\r\n\r\n")[2],
                          headers={"content-type": "application/json"}).status_code == 200
    rss = server.rss_mb()
    with connect(server) as sock:
        sock.setblocking(False)
        data, sent, started = request * 400, 0, time.monotonic()
        cut_off = False
        while sent < len(data) and time.monotonic() - started < 4 and not cut_off:
            try:
                sent += sock.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)  # pacing: the server is not reading; try again
            except ConnectionResetError:
                cut_off = True
        grown = server.rss_mb() - rss
        time.sleep(1)  # pacing: a second later, the client still pushing (or cut off)
        assert server.rss_mb() - rss <= grown + 1, "still growing"
    assert sent > 10_000_000 and grown < 12, (sent, grown)
    assert cut_off == (metric_value(server.url, "shed_requests_total", reason="memory") > 0)
    assert httpx.get(server.url + "/health").status_code == 200


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_upgrade_to_h2c_is_ignored_and_the_body_kept(server: Service, framing: str) -> None:
    upgrade = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
    plain = predict()
    if framing == "chunked":
        plain = (plain.partition(b"Content-Length")[0] + b"Transfer-Encoding: chunked\r\n\r\n"
                 + f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n")
    with connect(server) as sock:
        sock.sendall(plain.replace(b"Host: x\r\n", b"Host: x\r\n" + upgrade))
        upgraded = read_response(sock)
        sock.sendall(plain.replace(b"Host: x\r\n", b"Host: x\r\n" + upgrade))  # the next request on the connection too
        again = read_response(sock)
    expected = httpx.post(server.url + "/predict", content=BODY, headers={"content-type": "application/json"}).content
    assert upgraded.startswith(b"HTTP/1.1 200 ") and upgraded.endswith(expected) and again.endswith(expected)


@pytest.mark.parametrize("path", ["/health", "/model", "/v2/health/live"])
def test_head_answers_like_get_without_a_body(server: Service, path: str) -> None:
    get, head = httpx.get(server.url + path), httpx.head(server.url + path)
    assert (head.status_code, head.content) == (get.status_code, b"")
    assert head.headers["content-length"] == get.headers["content-length"]


def test_a_pipelined_requests_wait_counts_from_its_own_arrival() -> None:
    """A request whose head comes in the same read as the end of a slow upload before it waits from
    then, not from that upload's first byte: it is served, not shed for the upload's time."""
    queue_seconds = 0.2
    first, second = predict(), predict()
    with serve("onnx", cpus="0,1", env={"MAX_QUEUE_SECONDS": str(queue_seconds)}) as server, connect(server) as sock:
        sock.sendall(first[:-10])
        time.sleep(3 * queue_seconds)  # a slow upload: its first byte is now three deadlines old
        sock.sendall(first[-10:] + second[:-10])  # its end, and the next request's head (its body not all there)
        time.sleep(queue_seconds / 4)  # the next request's task starts (the first is answered) before its body ends
        sock.sendall(second[-10:])
        answers = read_responses(sock, 2)
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"HTTP/1.1 200 OK"] * 2, answers[1][:300]
