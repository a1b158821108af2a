"""The hot path: the outermost layer, answering the requests a deployment sends most — ``POST
/predict`` with a valid body, and the probes and scrapes (``GET /health``, ``/v2/health/live``,
``/metrics``) — without the framework's per-request machinery (request objects, routing,
dependency solving, response classes), and without the framework loaded at all (see :mod:`front`).

It answers a request in one of two ways. The server's protocol (:mod:`protocol`) asks it first
whether a request's headers are its to answer (:meth:`HotPath.takes_whole`); if so it gives the
whole body when it has arrived (:meth:`HotPath.answer_whole`), and the answer is written at once
(a request alone) or from the callback of the model call it shares: no ASGI task, no messages,
one write. Otherwise (a body of unknown length, a client waiting for ``100 Continue``, another
server) the request comes through the ASGI interface (:meth:`HotPath.__call__`).

Either way it only ever answers what the full application would answer the same way (same bytes,
same status, same metrics). Whatever it declines — not ready, another media type, a body over the
limit, a body the vectorised validation does not accept, a client that went away — goes to the
full application with the body it already read replayed, which then explains the problem.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from online_inference.app.dataplane import DataPlane, Served
from online_inference.app.fastpath import SMALL_BATCH
from online_inference.app.protocol import IN_PROGRESS, Headers, Reply
from online_inference.app.session import Prediction

Message = dict[str, Any]
JSON = "application/json"
Answer = tuple[int, str, bytes]  # status, media type, body
ROW_END = b',"warnings":[]},'  # a row without warnings, and the comma before the next
ROW_STARTS = (b'{"condition":0,"probability":', b'{"condition":1,"probability":')
ANSWER_HEAD = b'{"predictions":['


def media_type(content_type: str | None) -> str:
    """The media type a Content-Type header declares; a request without one is taken as JSON."""
    return (content_type or "application/json").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def predict_body(served: Served, X: np.ndarray, prediction: Prediction) -> bytes:
    """The ``/predict`` answer: one object per row, in request order, then the model's name and
    version. The rows are byte fragments — each row's start (by its label), its probability (all
    serialised by orjson in one call) and its end (the warnings) — put in place by slice between
    the answer's head and tail, and joined once: a quarter of the cost of building and serialising
    a dict per row, and no copy of the joined rows to add the head and tail."""
    labels = prediction.labels.tolist()
    parts = [ROW_END] * (3 * len(labels) + 2)  # the head, each row's start, probability and end, the tail
    parts[0] = ANSWER_HEAD
    parts[1:-1:3] = [ROW_STARTS[label] for label in labels]
    parts[2:-1:3] = orjson.dumps(round_probabilities(prediction.positive), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    for row, warnings in served.fast.warnings_by_row(X).items():
        parts[3 * row + 3] = b',"warnings":' + orjson.dumps(warnings) + b"},"
    parts[-2] = parts[-2].removesuffix(b",")  # the last row ends the array
    parts[-1] = answer_tail(served.card.name, served.card.version)
    return b"".join(parts)


def round_probabilities(positive: np.ndarray) -> list[float] | np.ndarray:
    """Probabilities rounded to 6 decimals by np.round's own steps (scale, round half to even,
    unscale) without its per-call cost (~9 µs); in Python for small batches, where even numpy's
    three calls are most of the work (``round`` of a float rounds half to even too)."""
    if len(positive) <= SMALL_BATCH:
        return [round(p * 1e6) / 1e6 for p in positive.tolist()]
    return np.rint(positive.astype(np.float64) * 1e6) / 1e6


@functools.cache
def answer_tail(name: str, version: str) -> bytes:
    """What follows the rows: the model's name and version."""
    return b'],"model":' + orjson.dumps({"name": name, "version": version}) + b"}"


def health_answer(plane: DataPlane) -> tuple[int, bytes]:
    """``/health``: 200 once the model is loaded and checked, 503 (loading or failed) otherwise."""
    body = plane.health()
    return (200 if body["status"] == "ready" else 503), orjson.dumps(body)


LIVE = orjson.dumps({"live": True})


def simple_routes(plane: DataPlane) -> dict[tuple[str, str], Callable[[], Answer]]:
    """The bodiless GETs the hot path answers, (method, path) → the answer's maker; each answers
    what the full application's route answers."""

    def health() -> Answer:
        status, body = health_answer(plane)
        return status, JSON, body

    def metrics() -> Answer:
        return 200, plane.metrics.content_type, plane.metrics.render()

    return {("GET", "/health"): health, ("GET", "/v2/health/live"): lambda: (200, JSON, LIVE), ("GET", "/metrics"): metrics}


def is_alone(scope: dict[str, Any]) -> bool:
    """Whether the server says no other request is in progress (our protocol tells it; with
    another server, requests may always share model calls)."""
    in_progress = scope.get("extensions", {}).get(IN_PROGRESS)
    return in_progress is not None and len(in_progress) == 1


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


class HotPath:
    def __init__(self, app: Any, plane: DataPlane, max_body_bytes: int):
        self.app = app
        self.plane = plane
        self.metrics = plane.metrics
        self.max_body_bytes = max_body_bytes
        self.simple = simple_routes(plane)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == "/predict" and method == "POST":
                return await self.predict(scope, receive, send)
            simple = self.simple.get((method, path))
            if simple is not None:
                return await self.answer_simple(path, simple, send)
        await self.app(scope, receive, send)

    async def answer_simple(self, path: str, make: Callable[[], Answer], send: Any) -> None:
        started = time.perf_counter()
        status, media, body = make()
        await self.answer(send, status, body, media)
        self.metrics.observe_request(path, "GET", status, time.perf_counter() - started)

    def takes_headers(self, scope: dict[str, Any], declared: str | None) -> bool:
        """A JSON body whose declared length, if any, is within the limit."""
        return is_json(media_type(header(scope, b"content-type"))) and (
            declared is None or (declared.isdigit() and int(declared) <= self.max_body_bytes))

    def takes_whole(self, scope: dict[str, Any]) -> bool:
        """Whether the hot path answers this request from its whole body, if the body is valid: a
        ``POST /predict`` of JSON, its length declared and within the limit, the model ready."""
        if scope["path"] != "/predict" or scope["method"] != "POST" or self.plane.served is None:
            return False
        declared = header(scope, b"content-length")
        return declared is not None and self.takes_headers(scope, declared)

    def answer_whole(self, scope: dict[str, Any], body: bytes, alone: bool, reply: Reply) -> bool:
        """Parse ``body`` now; if it is valid, ``reply`` with the answer of the model — at once if the
        request is ``alone``, else from the callback of this turn's shared call — or with None if
        the call failed (the application then answers, and reports). False: declined, the
        application answers."""
        started = time.perf_counter()
        served = self.plane.served
        X = served.fast.parse(body) if served is not None else None
        if served is None or X is None:
            return False

        def deliver(prediction: Prediction | Exception) -> None:  # never raises: others share the call
            try:
                if isinstance(prediction, Exception):
                    raise prediction
                answer = predict_body(served, X, prediction)
            except Exception:  # the application meets the same error, answers 500 and logs it
                return reply(None)
            reply((200, answer_headers(answer, JSON), answer))
            self.metrics.observe_request("/predict", "POST", 200, time.perf_counter() - started)

        self.plane.predict_soon(served, X, deliver, alone)
        return True

    async def predict(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        served = self.plane.served
        if served is None or not self.takes_headers(scope, header(scope, b"content-length")):
            return await self.app(scope, receive, send)
        chunks, complete = await self.read_body(receive)
        body = b"".join(chunks)
        X = served.fast.parse(body) if complete else None
        if X is None:
            return await self.app(scope, replay(body, complete, receive), send)
        status = 500  # until answered: an unexpected error propagates to the server, counted
        try:
            prediction = await self.plane.predict(served, X, alone=is_alone(scope))
            await self.answer(send, 200, predict_body(served, X, prediction))
            status = 200
        finally:
            self.metrics.observe_request("/predict", "POST", status, time.perf_counter() - started)

    async def read_body(self, receive: Any) -> tuple[list[bytes], bool]:
        """The body's chunks, and whether it ended within the size limit (False: over the limit,
        or the client went away — the full application says which)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return chunks, False
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_body_bytes:
                return chunks, False
            if not message.get("more_body", False):
                return chunks, True

    @staticmethod
    async def answer(send: Any, status: int, body: bytes, media: str = JSON) -> None:
        await send({"type": "http.response.start", "status": status, "headers": answer_headers(body, media)})
        await send({"type": "http.response.body", "body": body})


def answer_headers(body: bytes, media: str) -> Headers:
    return [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]


def replay(body: bytes, complete: bool, receive: Any) -> Any:
    """A ``receive`` that first gives back what was already read, then the rest of the stream."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": not complete}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
