"""The hot path: ``POST /predict`` with a valid body, the request a deployment sends most, answered
without the framework's per-request machinery (request objects, routing, dependency solving,
response classes). It reads the body, checks it with the decoder of whole arrays (:mod:`.decode`)
and answers with the bytes the FastAPI route would give. Whatever it does not accept — the model
not ready, another media type, a body over the size limit, a body the fast path declines, a
client that went away — goes to the FastAPI application, with what was read replayed, and the
route answers or explains it: every error of ``/predict`` comes from there.
"""

from __future__ import annotations

import time
from typing import Any

from online_inference.app.asgi import raising, read_body, replay, whole_body
from online_inference.app.dataplane.plane import DataPlane
from online_inference.app.errors import ServiceError
from online_inference.app.protocols.native.answer import answer_bytes
from online_inference.app.protocols.native.request import predict_request
from online_inference.app.protocols.rest.media import is_json, media_type
PATH = "/predict"  # the one place its path is written


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

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        served = self.plane.served
        if served is None or not is_json_request(scope):
            return await self.app(scope, receive, send)
        try:
            message = await receive()
            body, complete = whole_body(message), True  # most bodies (no coroutine to read them)
            if body is None:
                body, complete = await read_body(receive, message)
        except ServiceError as error:  # over a limit: the route reads the same error and answers it
            return await self.app(scope, raising(error), send)
        X = predict_request(served).decoder.parse(body) if complete else None
        if X is None:
            return await self.app(scope, replay(body, complete, receive), send)
        prediction = await self.plane.predict(served, X)
        answer = answer_bytes(served, X, prediction)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
        self.plane.metrics.observe_request(PATH, "POST", 200, time.perf_counter() - started)
