"""The front: the outermost ASGI layer, what every request passes before it is answered.

- The body is read within its size limit (:mod:`body`), whoever reads it.
- ``HEAD`` is answered as ``GET``, without the body.
- A request for work (``POST``) that waited past ``MAX_QUEUE_SECONDS`` from its first byte is
  shed: 503 with ``Retry-After``, before its body is read (:mod:`admission`). Probes and
  metadata are always answered.
- While the server drains, every answer says ``connection: close``.
- ``POST /predict`` goes to the hot path, which answers valid bodies itself; everything else, and
  every body the hot path does not accept, goes to the FastAPI application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from online_inference.app.admission import RETRY_AFTER_SECONDS, TICKET, Admission
from online_inference.app.body import BodyLimit
from online_inference.app.errors import Overloaded, error_body, error_headers
from online_inference.app.config import Settings
from online_inference.app.dataplane import DataPlane
from online_inference.app.hotpath import HotPath

if TYPE_CHECKING:
    from fastapi import FastAPI

Message = dict[str, Any]
SHED = Overloaded("the service is busy: the request waited past MAX_QUEUE_SECONDS before its work could start; "
                  "retry later", RETRY_AFTER_SECONDS)


class Front:
    def __init__(self, app: FastAPI, plane: DataPlane, settings: Settings):
        self.app = app
        self.plane = plane
        self.limit = BodyLimit(settings.MAX_BODY_BYTES)
        self.hot = HotPath(app, plane)
        self.admission: Admission = plane.admission

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "POST" and self.admission.too_late(scope.get("extensions", {}).get(TICKET)):
            return await shed(send)
        receive = self.limit.wrap(scope, receive)
        if self.plane.draining:
            send = closing(send)
        if scope["method"] == "HEAD":
            scope, send = {**scope, "method": "GET"}, without_body(send)
        elif scope["method"] == "POST" and scope["path"] == "/predict":
            return await self.hot.predict(scope, receive, send)
        await self.app(scope, receive, send)

    def drain(self) -> None:
        """The server is stopping: see :mod:`server`."""
        self.plane.drain()


async def shed(send: Any) -> None:
    """503 with ``Retry-After``: the request waited too long to be worth serving now."""
    error = SHED
    await send({"type": "http.response.start", "status": error.status_code,
                "headers": [(k.encode(), v.encode()) for k, v in error_headers(error).items()]})
    await send({"type": "http.response.body", "body": error_body(error)})


def closing(send: Any) -> Any:
    """``send`` that adds ``connection: close`` to the answer's headers."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)

    return send_closing


def without_body(send: Any) -> Any:
    """``send`` for a HEAD request: the GET answer's status and headers, no body."""

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head
