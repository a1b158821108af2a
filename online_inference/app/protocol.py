"""uvicorn's httptools protocol with a deadline for each request's headers, and telling the
application how many requests are in progress.

uvicorn times out idle keep-alive connections but not a client that sends its headers slowly
(slowloris): such connections would stay open for ever. Here every request must finish its
headers within ``TIMEOUT_HEADERS`` seconds of its first bytes (or of the connection opening),
else the connection is closed.

Each request's scope carries the ASGI extension ``IN_PROGRESS``: the server's set of request
tasks (headers read, answer not finished), live — ``len()`` of it when the application looks.
A request alone needs no company for its model call (see :mod:`batching`): the application
reads it to skip the wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from online_inference.app.config import get_settings


IN_PROGRESS = "heart.requests_in_progress"


class ServiceProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = get_settings().TIMEOUT_HEADERS
        self.header_timer: asyncio.TimerHandle | None = None
        self.awaiting_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Most requests arrive whole: a timer is armed only for headers still incomplete when
        # what has arrived is parsed, not armed and cancelled for every request.
        if self.awaiting_headers and self.header_timer is None:
            self.arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope.setdefault("extensions", {})[IN_PROGRESS] = self.tasks  # type: ignore[typeddict-item]
        self.awaiting_headers = True

    def on_headers_complete(self) -> None:
        self.awaiting_headers = False
        self.cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_header_timer()
        super().connection_lost(exc)

    def arm_header_timer(self) -> None:
        self.header_timer = self.loop.call_later(self.header_timeout, self.close_slow_client)

    def cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def close_slow_client(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
