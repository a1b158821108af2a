"""Request metrics of the FastAPI application (pure ASGI: no per-request task hand-off)."""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from online_inference.app.dataplane.metrics import Metrics

UNMATCHED = "<unmatched>"


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", UNMATCHED)


class RequestMetrics:
    """Records every request's route, status and latency (499: the client went away mid-request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_tracking(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except ClientDisconnect:
            status = 499  # nothing to answer, nothing to log
        finally:
            self.metrics.observe_request(route_of(scope), scope["method"], status, time.perf_counter() - started)
