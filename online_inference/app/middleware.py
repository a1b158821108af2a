"""Pure ASGI middleware (no per-request task hand-offs): body-size limit and request metrics."""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from online_inference.app.errors import PayloadTooLarge
from online_inference.app.metrics import Metrics
from online_inference.app.responses import render_error

UNMATCHED = "<unmatched>"


def content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", UNMATCHED)


class ServiceMiddleware:
    """Answers 413 before reading a body declared (or found while streaming) over the limit,
    and records every request's route, status and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        limit = self.max_body_bytes
        too_large = PayloadTooLarge(f"request body over MAX_BODY_BYTES ({limit} bytes)")

        async def send_tracking(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        try:
            declared = content_length(scope)
            if declared is not None and declared > limit:
                await render_error(too_large)(scope, receive, send_tracking)
            else:
                await self.app(scope, receive_limited, send_tracking)
        except ClientDisconnect:
            status = 499  # the client went away mid-request: nothing to answer, nothing to log
        finally:
            self.metrics.observe_request(route_of(scope), scope["method"], status, time.perf_counter() - started)


