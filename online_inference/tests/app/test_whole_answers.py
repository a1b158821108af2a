"""Spec: the server's protocol gives a valid ``/predict`` whose length is declared to the hot path
whole, which answers it without an ASGI task, in one write, with the very bytes the task would
have written; a request alone whose body came with its headers is answered in that read, without
even uvicorn's scope and cycle; pipelined requests keep their order whichever way each is answered;
everything the hot path declines is answered by the full application as before."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from online_inference.app.config import Settings
from online_inference.app.front import create_front
from online_inference.app.protocol import ServiceProtocol
from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_session, live_server, read_response, read_responses, valid_row, wait_until


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests for which uvicorn's ASGI task was started."""
    started: list[str] = []
    start = HttpToolsProtocol._start_asgi_task  # what our protocol calls for a request it does not answer whole

    def counted(self: HttpToolsProtocol, cycle, app) -> None:  # type: ignore[no-untyped-def]
        started.append(cycle.scope["path"])
        start(self, cycle, app)

    monkeypatch.setattr(HttpToolsProtocol, "_start_asgi_task", counted)
    return started


@pytest.fixture
def cycles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests for which uvicorn built its request-response cycle."""
    built: list[str] = []
    build = httptools_impl.RequestResponseCycle

    def counted(**kwargs):  # type: ignore[no-untyped-def]
        built.append(kwargs["scope"]["path"])
        return build(**kwargs)

    monkeypatch.setattr(httptools_impl, "RequestResponseCycle", counted)
    return built


@pytest.fixture
def address(settings: Settings) -> Iterator[tuple[str, int]]:
    """The service (its hot path before the full application) on uvicorn with our protocol, without
    the access log (as the service runs by default: with it, every request keeps uvicorn's path)."""
    front = create_front(settings, loader=bundled_session)
    with live_server(front, http=ServiceProtocol, lifespan="on", access_log=False, proxy_headers=False) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def predict_body(card: ModelCard, rows: list[list[float]]) -> bytes:
    return json.dumps({"features": card.feature_names, "data": rows}).encode()


def with_length(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def chunked(body: bytes) -> bytes:
    """The same request with a body of unknown length: it takes uvicorn's ASGI path."""
    return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")


def exchange(address: tuple[str, int], *requests: bytes) -> list[bytes]:
    """Send ``requests`` pipelined in one write; their answers, in order."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"".join(requests))
        return read_responses(sock, len(requests))


def without_date(response: bytes) -> bytes:
    return b"\r\n".join(line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:"))


def test_a_valid_predict_is_answered_without_a_task_as_the_task_answers_it(address: tuple[str, int], card: ModelCard,
                                                                           tasks: list[str]) -> None:
    body = predict_body(card, [valid_row(card)])
    [whole] = exchange(address, with_length(body))
    assert tasks == []
    [by_task] = exchange(address, chunked(body))
    assert tasks == ["/predict"]
    assert whole.startswith(b"HTTP/1.1 200 OK\r\n")
    assert without_date(whole) == without_date(by_task)


def test_pipelined_requests_are_answered_in_order_whichever_path_answers_each(address: tuple[str, int], card: ModelCard,
                                                                              tasks: list[str]) -> None:
    rows = [valid_row(card), [card.features[0].bounds.min, *valid_row(card)[1:]]]
    first, second = (predict_body(card, [row]) for row in rows)
    invalid = predict_body(card, [[-1] * len(card.features)])
    answers = exchange(address, with_length(first), with_length(invalid), with_length(second),
                       b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", with_length(first))
    assert [a.split(b" ")[1] for a in answers] == [b"200", b"400", b"200", b"200", b"200"]
    assert b'"status":"ready"' in answers[3]
    assert without_date(answers[0]) == without_date(answers[4]) != without_date(answers[2])
    assert tasks == ["/predict", "/health"]  # the invalid body, explained by the full application; the probe


def test_a_body_that_arrives_in_pieces_is_gathered_then_answered_whole(address: tuple[str, int], card: ModelCard,
                                                                      tasks: list[str]) -> None:
    request = with_length(predict_body(card, [valid_row(card)]))
    head_end = request.index(b"\r\n\r\n") + 4
    with socket.create_connection(address, timeout=10) as sock:
        for piece in (request[:head_end], request[head_end:head_end + 20], request[head_end + 20:]):
            sock.sendall(piece)
            threading.Event().wait(0.05)
        assert read_response(sock).startswith(b"HTTP/1.1 200 OK\r\n")
    assert tasks == []


def test_a_request_alone_is_answered_without_a_scope_or_cycle_unless_it_needs_one(address: tuple[str, int], card: ModelCard,
                                                                                 cycles: list[str], tasks: list[str]) -> None:
    body = predict_body(card, [valid_row(card)])
    [answer] = exchange(address, with_length(body))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and cycles == [] and tasks == []
    [explained] = exchange(address, with_length(predict_body(card, [[-1] * len(card.features)])))
    assert explained.startswith(b"HTTP/1.1 400 ") and cycles == tasks == ["/predict"]  # declined: the full application
    request = with_length(body)
    head_end = request.index(b"\r\n\r\n") + 4
    with socket.create_connection(address, timeout=10) as sock:  # its body not in the read of its headers
        sock.sendall(request[:head_end])
        threading.Event().wait(0.05)
        sock.sendall(request[head_end:])
        assert without_date(read_response(sock)) == without_date(answer)
    assert cycles == ["/predict", "/predict"] and tasks == ["/predict"]  # a cycle, answered whole all the same


def test_an_http_1_0_request_alone_is_answered_then_its_connection_closes(address: tuple[str, int], card: ModelCard) -> None:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(with_length(predict_body(card, [valid_row(card)])).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nconnection: close\r\n" in answer
        assert sock.recv(1) == b""


def test_the_concurrency_limit_holds_for_requests_answered_whole(settings: Settings, card: ModelCard) -> None:
    front = create_front(settings, loader=bundled_session)
    with live_server(front, ready_path=None, http=ServiceProtocol, lifespan="on", access_log=False, proxy_headers=False,
                     limit_concurrency=1) as url:
        wait_until(lambda: front.plane.served is not None, timeout=20)
        host, port = url.removeprefix("http://").split(":")
        [answer] = exchange((host, int(port)), with_length(predict_body(card, [valid_row(card)])))
    assert answer.startswith(b"HTTP/1.1 503 ")  # uvicorn's answer: one connection is already the limit


def test_a_client_that_asks_to_close_gets_its_answer_then_the_connection_closes(address: tuple[str, int], card: ModelCard) -> None:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(with_length(predict_body(card, [valid_row(card)]), extra=b"Connection: close\r\n"))
        answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nconnection: close\r\n" in answer
        assert sock.recv(1) == b""


def test_requests_on_many_connections_share_model_calls_and_each_gets_its_own_rows(address: tuple[str, int],
                                                                                   card: ModelCard) -> None:
    low = card.features[0].bounds.min
    bodies = [predict_body(card, [[low + i, *valid_row(card)[1:]]]) for i in range(8)]
    alone = [exchange(address, with_length(body))[0] for body in bodies]
    sockets = [socket.create_connection(address, timeout=10) for _ in bodies]
    try:
        for sock, body in zip(sockets, bodies):  # 8 connections open: none is alone, calls are shared
            sock.sendall(with_length(body))
        in_company = [read_response(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    # A shared call sums float32 products in another order: the sixth decimal may differ.
    for ours, own_call in zip(map(prediction_of, in_company), map(prediction_of, alone)):
        assert ours["condition"] == own_call["condition"] and ours["warnings"] == own_call["warnings"]
        assert abs(ours["probability"] - own_call["probability"]) <= 2e-6
    assert len({prediction_of(a)["probability"] for a in alone}) > 1  # the rows' answers differ: none got another's


def prediction_of(response: bytes) -> dict:  # type: ignore[type-arg]
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    [prediction] = json.loads(response.partition(b"\r\n\r\n")[2])["predictions"]
    return prediction  # type: ignore[no-any-return]
