"""The server process: uvicorn through its public ``Config`` and ``Server``, serving the one
application :func:`compose.create_app` composes, at the edge of :mod:`http.edge`.

A stop (SIGTERM, or SIGINT: Ctrl-C) drains without loss. At the signal ``/health`` answers 503
``draining``, so that readiness fails first. When uvicorn's loop next looks (a tenth of a second),
the connections the kernel has already accepted are accepted too (closing the listener would reset
them), then the listener closes; every connection the server has is answered (the front says
``connection: close`` on each answer) and closes, within ``TIMEOUT_GRACEFUL_SHUTDOWN``; then the
process exits 0: a requested stop is not a crash (uvicorn re-raises the signal, which would make
the exit status 143). A second Ctrl-C stops at once.

gRPC (``GRPC_PORT``: :mod:`.grpc.transport`) runs on the same loop: it listens just before uvicorn
(a port it cannot bind fails the start, exit 3, before the model loads), and drains beside it. At
the signal its health service answers NOT_SERVING; at the stop it listens no more and sends GOAWAY
on its connections, and its RPCs in flight get ``TIMEOUT_GRACEFUL_SHUTDOWN`` too.

TLS (``TLS_CERT_FILE``, :mod:`.tls`) is on both listeners or on neither: uvicorn takes
:attr:`.tls.ServerTls.https` through its ``ssl_context_factory``, grpclib :attr:`~.tls.ServerTls.grpc`,
and the task that serves a renewed certificate runs on the loop from the start to the stop. TLS
settings or files that cannot be served stop the start, as other settings do.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import select
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from online_inference.app.dataplane.admission import Admission
from online_inference.app.settings import Settings, SettingsError, get_settings
from online_inference.app.dataplane.plane import Loader
from online_inference.app.http.edge import EdgeLimits, EdgeProtocol
from online_inference.app.compose import create_app, create_grpc
from online_inference.app.grpc.transport import GrpcServer
from online_inference.app.tls import ServerTls

log = logging.getLogger(__name__)
BACKLOG_WAIT_SECONDS = 1.0  # at most this long accepting what the kernel accepted before the stop


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_drain: Callable[[], None],
                 grpc: Callable[[], GrpcServer] | None = None, tls: ServerTls | None = None):
        """``grpc`` makes the gRPC server (on the running loop) that starts and stops with this one;
        ``tls``: the contexts of both listeners (``config``'s ``ssl_context_factory`` gives its ``https``)."""
        super().__init__(config)
        self.on_drain = on_drain
        self.make_grpc = grpc
        self.grpc: GrpcServer | None = None
        self.tls = tls
        self.renewals: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """gRPC listens first: a port it cannot bind fails the start before the model loads (a
        process that exits while onnxruntime loads in its thread aborts)."""
        if self.tls is not None:
            log.info("%s", self.tls.describe())
            self.renewals = asyncio.ensure_future(self.tls.watch())
        if self.make_grpc is not None:
            self.grpc = self.make_grpc()
            try:
                await self.grpc.start_listening(ssl=None if self.tls is None else self.tls.grpc)
            except OSError as error:
                log.error("gRPC cannot listen on port %d: %s", self.grpc.limits.port, error)
                sys.exit(3)  # uvicorn's STARTUP_FAILURE
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.on_drain()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        grpc_stopped = asyncio.ensure_future(self.grpc.stop()) if self.grpc is not None else None
        await self.accept_waiting_connections()
        await super().shutdown(sockets)
        if grpc_stopped is not None:
            await grpc_stopped
        if self.renewals is not None:
            self.renewals.cancel()

    async def accept_waiting_connections(self) -> None:
        """Let the loop accept the connections waiting in the listeners' queues: a listening socket
        is readable while its queue is not empty."""
        listeners = [sock for server in self.servers for sock in server.sockets]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BACKLOG_WAIT_SECONDS
        while listeners and select.select(listeners, [], [], 0)[0] and loop.time() < deadline:
            await asyncio.sleep(0.001)


def uvicorn_config(settings: Settings, app: Any, admission: Admission, tls: ServerTls | None = None) -> uvicorn.Config:
    """``tls``: HTTPS with its context (uvicorn's public ``ssl_context_factory``: :mod:`.tls` says why)."""
    https = None if tls is None else (lambda config, default: tls.https)
    return uvicorn.Config(
        app,
        host=settings.HOST,
        port=settings.PORT,
        http=functools.partial(EdgeProtocol, limits=EdgeLimits.of(settings), admission=admission),  # type: ignore[arg-type]
        loop="uvloop",
        ws="none",
        lifespan="on",
        log_level=settings.LOG_LEVEL,
        access_log=settings.ACCESS_LOG,
        timeout_keep_alive=settings.TIMEOUT_KEEP_ALIVE,
        timeout_graceful_shutdown=settings.TIMEOUT_GRACEFUL_SHUTDOWN,
        limit_concurrency=settings.LIMIT_CONCURRENCY,
        proxy_headers=False,  # the service reads no client address
        server_header=False,
        ssl_context_factory=https,
    )


def build_server(settings: Settings, loader: Loader | None = None) -> Server:
    """The server of ``python -m online_inference.app`` (and of the tests that run it in a thread).
    TLS settings or files that cannot be served raise :class:`SettingsError`."""
    tls = ServerTls.of(settings)
    app = create_app(settings, loader)
    return Server(uvicorn_config(settings, app, app.plane.admission, tls), on_drain=app.drain,
                  grpc=functools.partial(create_grpc, settings, app), tls=tls)


def ignore(sig: int, frame: FrameType | None) -> None:
    """What uvicorn's re-raised signal finds after a graceful stop: nothing more to do."""


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as error:
        sys.exit(f"heart-online-inference: {error}")
    logging.basicConfig(level=settings.LOG_LEVEL.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = build_server(settings)
    except SettingsError as error:  # TLS files that cannot be served
        sys.exit(f"heart-online-inference: {error}")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, ignore)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE
