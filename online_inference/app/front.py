"""What the server process runs: the hot path in front of the full application, which is built on
the first request the hot path hands over — not at start.

A start then imports only what answering a valid ``/predict``, the probes and the scrapes needs
(numpy, ONNX Runtime, the server, Prometheus' client): FastAPI and pydantic — half of a start's
time and a fifth of its memory — load when a request first needs them (an invalid body, V2,
``/model``, the docs). That request waits for the build (a few tenths of a second, once; the
build runs in a thread, so the hot path keeps answering meanwhile) and is then answered exactly
as it would have been. Readiness means the model is loaded and checked: every request can be
answered from then on. ``PRELOAD_APP=true`` builds the full application as soon as the model has
loaded instead, for deployments that would rather hold the memory than make one request wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from online_inference.app.config import Settings, get_settings
from online_inference.app.dataplane import DataPlane, Loader, create_plane
from online_inference.app.hotpath import HotPath
from online_inference.app.protocol import Reply

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Any, Any], Any]


class LazyApp:
    """An ASGI app built by ``build`` (in a thread) on its first request; built once."""

    def __init__(self, build: Callable[[], ASGIApp]):
        self.build = build
        self.app: ASGIApp | None = None
        self.lock: asyncio.Lock | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = self.app or await self.build_once()
        await app(scope, receive, send)

    async def build_once(self) -> ASGIApp:
        self.lock = self.lock or asyncio.Lock()
        async with self.lock:
            if self.app is None:  # a failed build raises to this request (500) and is tried again
                started = time.perf_counter()
                self.app = await asyncio.to_thread(self.build)
                log.info("full application built in %.3fs", time.perf_counter() - started)
        return self.app


class Front:
    """The server's ASGI application: lifespan (start loading the model), then every HTTP request
    to the hot path, which hands what it does not answer to the lazily built full application.
    The server's protocol may also give the hot path a request whole, without a task."""

    def __init__(self, settings: Settings, plane: DataPlane):
        self.plane = plane
        self.preload = settings.PRELOAD_APP
        self.full = LazyApp(lambda: build_full_app(settings, plane))
        self.hot = HotPath(self.full, plane, settings.MAX_BODY_BYTES)
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        await self.hot(scope, receive, send)

    def takes_whole(self, scope: dict[str, Any]) -> bool:
        """The server's protocol asks (see :mod:`protocol`): the hot path's."""
        return self.hot.takes_whole(scope)

    def answer_whole(self, scope: dict[str, Any], body: bytes, alone: bool, reply: Reply) -> bool:
        return self.hot.answer_whole(scope, body, alone, reply)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.plane.start_loading()  # the server listens at once; /health says "loading" meanwhile
                if self.preload:
                    task = asyncio.create_task(self.build_when_settled())
                    self.tasks.add(task)  # a reference until it is done
                    task.add_done_callback(self.tasks.discard)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def build_when_settled(self) -> None:
        """PRELOAD_APP: build the full application once the model has loaded (or failed)."""
        await asyncio.to_thread(self.plane.settled.wait)
        try:
            await self.full.build_once()
        except Exception:  # the first request that needs it tries again, and reports
            log.exception("preloading the full application failed")


def build_full_app(settings: Settings, plane: DataPlane) -> FastAPI:
    """FastAPI and the routes (imported here, not at start), and the request schema if the model
    is loaded, so that the request that asked for them is the only one to wait."""
    from online_inference.app.main import build_app

    app = build_app(settings, plane)
    if plane.served is not None:
        _ = plane.served.schema
    return app


def create_front(settings: Settings | None = None, loader: Loader | None = None) -> Front:
    """The server's application (a factory: ``uvicorn --factory`` and WORKERS > 1 call it)."""
    settings = settings or get_settings()
    return Front(settings, create_plane(settings, loader))
