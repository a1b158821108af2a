"""The hot path: ``POST /predict`` with a valid body, the request a deployment sends most, answered
without the framework's per-request machinery (request objects, routing, dependency solving,
response classes). It reads the body, checks it with the vectorised fast path (:mod:`fastpath`)
and answers with the bytes the FastAPI route would give. Whatever it does not accept — the model
not ready, another media type, a body over the size limit, a body the fast path declines, a
client that went away — goes to the FastAPI application, with what was read replayed, and the
route answers or explains it: every error of ``/predict`` comes from there.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import orjson

from online_inference.app.http.body import Message
from online_inference.app.dataplane.plane import DataPlane, Served
from online_inference.app.errors import ServiceError
from online_inference.app.model.session import Prediction

ROW_END = b',"warnings":[]},'  # a row without warnings, and the comma before the next
ANSWER_HEAD = b'{"predictions":['


def media_type(content_type: str | None) -> str:
    """The media type a Content-Type header declares; a request without one is taken as JSON."""
    return (content_type or "application/json").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def predict_body(served: Served, X: np.ndarray, prediction: Prediction) -> bytes:
    """The ``/predict`` answer: one object per row, in request order, then the model's name and
    version. The rows are byte fragments — each row's start (the target's name and the row's
    class), its probability (all written in one call: :func:`probability_texts`) and its end (the
    warnings) — joined once between the answer's head and tail."""
    card = served.card
    labels = prediction.labels.tolist()
    starts = row_starts(card.target, *card.classes)
    parts = [ROW_END] * (3 * len(labels) + 2)  # the head, each row's start, probability and end, the tail
    parts[0] = ANSWER_HEAD
    parts[1:-1:3] = [starts[label] for label in labels]
    parts[2:-1:3] = probability_texts(prediction.positive)
    for row, warnings in served.fast.warnings_by_row(X).items():
        parts[3 * row + 3] = b',"warnings":' + orjson.dumps(warnings) + b"},"
    parts[-2] = parts[-2].removesuffix(b",")  # the last row ends the array
    parts[-1] = answer_tail(card.name, card.version)
    return b"".join(parts)


def probability_texts(positive: np.ndarray) -> list[bytes]:
    """Each of the model's float32 probabilities as an answer writes it: the shortest decimal that
    reads back as that float32 (orjson's float32 format; at most 9 significant digits). Nothing is
    rounded away, so an answer says 0 or 1 only when the model's value is exactly 0 or 1 (6
    significant digits would make 1 of every float32 from 0.9999995 up), and reading it back as a
    float32 gives V2's bits. One call for the whole batch, whatever its size."""
    return orjson.dumps(np.ascontiguousarray(positive), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


@functools.cache
def row_starts(target: str, *classes: int) -> dict[int, bytes]:
    """What a row's object starts with, by its class: ``{"<target>":<class>,"probability":``."""
    return {label: b"{" + orjson.dumps(target) + b":" + orjson.dumps(label) + b',"probability":' for label in classes}


@functools.cache
def answer_tail(name: str, version: str) -> bytes:
    """What follows the rows: the model's name and version."""
    return b'],"model":' + orjson.dumps({"name": name, "version": version}) + b"}"


def is_json_request(scope: dict[str, Any]) -> bool:
    """Whether the request's body is declared JSON (no Content-Type is taken as JSON)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value == b"application/json" or is_json(media_type(value.decode("latin-1")))
    return True


class HotPath:
    def __init__(self, app: Any, plane: DataPlane):
        self.app = app
        self.plane = plane

    async def predict(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        served = self.plane.served
        if served is None or not is_json_request(scope):
            return await self.app(scope, receive, send)
        try:
            body, complete = await read_body(receive)
        except ServiceError as error:  # over a limit: the route reads the same error and answers it
            return await self.app(scope, raising(error), send)
        X = served.fast.parse(body) if complete else None
        if X is None:
            return await self.app(scope, replay(body, complete, receive), send)
        prediction = await self.plane.predict(served, X)
        answer = predict_body(served, X, prediction)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
        self.plane.metrics.observe_request("/predict", "POST", 200, time.perf_counter() - started)


async def read_body(receive: Any) -> tuple[bytes, bool]:
    """The body, and whether it all arrived (False: the client went away)."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        return message.get("body", b""), True  # most bodies: in one message
    chunks: list[bytes] = []
    while message["type"] == "http.request":
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True
        message = await receive()
    return b"".join(chunks), False


def replay(body: bytes, complete: bool, receive: Any) -> Any:
    """A ``receive`` that first gives back what was already read, then the rest of the stream."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": not complete}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def raising(error: ServiceError) -> Any:
    """A ``receive`` that raises ``error``, as the request's own did."""

    async def raise_it() -> Message:
        raise error

    return raise_it
