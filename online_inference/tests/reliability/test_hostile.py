"""Spec: hostile input never produces a 5xx, against the real server process (uvicorn,
httptools): deep nesting, huge strings, numbers past float range, duplicate keys, wrong content
types, truncated bodies, a 100 MB body (413 before it is read), and slow clients (slowloris)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from online_inference.bench.server import Service, serve
from online_inference.tests.helpers import assert_nothing_charged, bundled_card, read_response, valid_row
from online_inference.tests.v2_cases import INFER_PATH, MALFORMED_BINARY

CARD = bundled_card()
NAMES = CARD.feature_names
ROW = valid_row(CARD)
GOOD = json.dumps({"features": NAMES, "data": [ROW]})


@pytest.fixture(scope="module")
def server() -> Iterator[Service]:
    with serve("onnx", cpus="0,1", env={"TIMEOUT_HEADERS": "1", "MAX_BODY_BYTES": str(8 * 1024 * 1024)}) as service:
        yield service
        assert_nothing_charged(service.url)  # after every test of the module


def post(server: Service, body: bytes | str, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(server.url + "/predict", content=body, headers={"content-type": content_type}, timeout=30)


def raw_request(server: Service, head: bytes, body: bytes = b"", read: bool = True) -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        return sock.recv(65536) if read else b""


HOSTILE = {
    "deeply nested arrays": "[" * 100_000 + "]" * 100_000,
    "deeply nested in a row": json.dumps({"features": NAMES, "data": [[0] * 12]}).replace("[0,", "[" + "[" * 5000 + "0" + "]" * 5000 + ",", 1),
    "huge string value": json.dumps({"features": NAMES, "data": [["x" * 5_000_000, *ROW[1:]]]}),
    "huge key": json.dumps({"k" * 1_000_000: 1}),
    "1e309": GOOD.replace(f"[{ROW[0]}", "[1e309", 1),
    "-1e309": GOOD.replace(f"[{ROW[0]}", "[-1e309", 1),
    "huge integer": GOOD.replace(f"[{ROW[0]}", "[" + "9" * 4000, 1),
    "NaN literal": GOOD.replace(f"[{ROW[0]}", "[NaN", 1),
    "Infinity literal": GOOD.replace(f"[{ROW[0]}", "[Infinity", 1),
    "duplicate top-level keys": '{"features": %s, "features": %s, "data": [%s]}' % (json.dumps(NAMES), json.dumps(NAMES), json.dumps(ROW)),
    "duplicate instance keys": '{"instances": [{"age": 63, %s}]}' % json.dumps(dict(zip(NAMES, ROW)))[1:-1],
    "truncated JSON": GOOD[: len(GOOD) // 2],
    "empty body": "",
    "not UTF-8": b"\xff\xfe{\x00",
    "lone surrogate": GOOD.replace('"age"', '"\\ud800"', 1),
    "many rows of garbage": json.dumps({"features": NAMES, "data": [["x"] * 13] * 5000}),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_body_is_a_clean_4xx(server: Service, name: str) -> None:
    response = post(server, HOSTILE[name])
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert len(response.content) < 200_000, "an error answer never echoes a huge input"
    assert response.json()["error"]


@pytest.mark.parametrize("name", ["duplicate top-level keys", "duplicate instance keys"])
def test_duplicate_keys_are_named(server: Service, name: str) -> None:
    """Parsers disagree on repeated keys (first wins, last wins): refuse rather than guess."""
    problems = post(server, HOSTILE[name]).json()["problems"]
    assert any("duplicate key" in p["reason"] for p in problems)


def test_a_flood_of_problems_is_listed_up_to_100_with_the_total(server: Service) -> None:
    body = post(server, HOSTILE["many rows of garbage"]).json()
    assert len(body["problems"]) == 100 and body["problems_total"] == 5000 * 13


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"])
def test_wrong_content_type_is_415(server: Service, content_type: str) -> None:
    response = post(server, GOOD, content_type)
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert post(server, GOOD, "application/json; charset=utf-8").status_code == 200


def test_100_mb_body_is_refused_before_it_is_read(server: Service) -> None:
    rss_before = server.rss_mb()
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    started = time.monotonic()
    answer = raw_request(server, head, b'{"features": [')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 5
    assert server.rss_mb() - rss_before < 20, "the body was not buffered"


def test_100_mb_chunked_body_is_cut_at_the_limit(server: Service) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"features": ['
        for _ in range(100):
            yield b" " * 1_000_000

    response = httpx.post(server.url + "/predict", content=chunks(), headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413


def test_truncated_body_then_disconnect_leaves_the_server_healthy(server: Service) -> None:
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    for _ in range(20):
        raw_request(server, head, GOOD[:50].encode(), read=False)
    assert httpx.get(server.url + "/health").status_code == 200
    assert post(server, GOOD).status_code == 200


def test_malformed_http_is_a_400(server: Service) -> None:
    assert raw_request(server, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")


def until_closed(sock: socket.socket, deadline: float) -> bytes:
    """What the server sends before it closes the connection; fails if it is still open at ``deadline``
    (a socket timeout is the client giving up, not the server closing)."""
    received = b""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        except TimeoutError:
            raise AssertionError(f"still open at the deadline, after {received[:60]!r}") from None
        if not chunk:
            return received
        received += chunk


def test_slowloris_cannot_hold_connections(server: Service) -> None:
    """Clients that dribble their headers are answered 408 and cut off TIMEOUT_HEADERS (1 s here)
    after their first byte, and the server keeps answering everyone else meanwhile."""
    host, port = server.url.removeprefix("http://").split(":")
    slow = [socket.create_connection((host, int(port)), timeout=5) for _ in range(200)]
    started = time.monotonic()
    for sock in slow:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
    assert post(server, GOOD).status_code == 200
    try:
        answers = [until_closed(sock, started + 3) for sock in slow]
    finally:
        for sock in slow:
            sock.close()
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), {a[:40] for a in answers}
    assert post(server, GOOD).status_code == 200


def test_slowloris_after_a_first_request_is_cut_off_too(server: Service) -> None:
    """A keep-alive connection whose next request dribbles its headers gets the same deadline."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        assert until_closed(sock, started + 3).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize(("case", "headers", "body"), [c[:3] for c in MALFORMED_BINARY], ids=[c[0] for c in MALFORMED_BINARY])
def test_malformed_v2_binary_data_is_a_clean_4xx(server: Service, case: str, headers: dict[str, str], body: bytes) -> None:
    response = httpx.post(server.url + INFER_PATH, content=body, headers=headers, timeout=30)
    assert 400 <= response.status_code < 500 and response.json()["error"], (response.status_code, response.text[:300])


def test_no_hostile_body_is_ever_answered_5xx(server: Service) -> None:
    """Counted by the server itself, for the whole hostile set sent here (the server's log is
    checked for tracebacks when it stops). Only the readiness answer while the model loads
    (start-up polls /health) may be a 503."""
    for body in HOSTILE.values():
        post(server, body)
    for _, headers, body, _ in MALFORMED_BINARY:
        httpx.post(server.url + INFER_PATH, content=body, headers=headers, timeout=30)
    samples = [sample for family in text_string_to_metric_families(httpx.get(server.url + "/metrics").text)
               for sample in family.samples if sample.name == "http_requests_total"]
    assert any(sample.labels["status"] == "400" for sample in samples)  # the set was counted
    fives = [sample.labels for sample in samples if sample.labels["status"].startswith("5")
             and (sample.labels["route"], sample.labels["status"]) != ("/health", "503")]
    assert fives == []
