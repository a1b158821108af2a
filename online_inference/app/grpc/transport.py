"""The gRPC transport: grpclib's server on the event loop uvicorn runs, serving the services the
composition gives it (:mod:`...compose`), with the limits and the drain grpclib lacks.

Every unary RPC is read here before its service sees it (:class:`.call.Call`, the stream its
handler gets). With ``API_KEYS_FILE``, its ``authorization`` metadata is checked first, before
anything is read (:mod:`...dataplane.access`, the group its service declares): UNAUTHENTICATED or
PERMISSION_DENIED with the service's error message, counted by reason; with ``ACCESS_LOG`` an
authenticated call is logged by its key's name (a streaming RPC's too: health's Watch needs none,
reflection any known key). Then the 5-byte prefix, so that a message over its limit is refused RESOURCE_EXHAUSTED
unread (``MAX_BODY_BYTES`` for the work, ModelInfer; :data:`.call.SMALL_MESSAGE` for the rest,
which carry names); then it is charged to the memory budget before its body is read, as REST's
requests are (:mod:`...dataplane.admission`; one that does not fit is refused UNAVAILABLE, with
``retry-after``); its body must have come ``TIMEOUT_BODY`` after the RPC began; and the
work waits for its turn in the one queue REST's requests wait in (:mod:`...dataplane.workqueue`),
shed past ``MAX_QUEUE_SECONDS``. A call whose deadline has passed by then is not run. Bytes that
are no protobuf message of the RPC's type are INVALID_ARGUMENT. The charge is given back when the
RPC ends, however it ends (a cancelled RPC holds nothing); an answer the client does not take
within ``TIMEOUT_BODY`` resets its stream. A service raises the service's errors
(:mod:`...errors`); :data:`.status.STATUS` maps them to gRPC's codes, once.

The drain (:meth:`GrpcServer.drain`): stop listening, GOAWAY on every connection (:mod:`.connection`),
wait for the unary RPCs in flight within ``TIMEOUT_GRACEFUL_SHUTDOWN``, then close what is left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.metadata import Deadline
from grpclib.server import Handler as ConnectionHandler
from grpclib.server import Server

from online_inference.app.dataplane.access import ANY_KEY, REFUSED, Access, calls
from online_inference.app.dataplane.admission import Admission
from online_inference.app.dataplane.workqueue import WorkQueue
from online_inference.app.errors import InvalidInput, ServiceError
from online_inference.app.grpc.call import Call
from online_inference.app.grpc.connection import ConnectionLimits, PolicedProtocol
from online_inference.app.grpc.status import status_of
from online_inference.app.settings import Settings

log = logging.getLogger(__name__)

LAST_WORD_SECONDS = 0.5  # at the end of a drain, what streaming RPCs get to end (a health Watch says NOT_SERVING)
CLOSE_SECONDS = 1.0  # at most this long for grpclib's handlers to end once cancelled (vmagamedov/grpclib#107)
@dataclass(frozen=True)
class GrpcLimits:
    host: str
    port: int
    max_message: int
    body_timeout: float
    grace: float
    connection: ConnectionLimits
    access_log: bool = False  # ACCESS_LOG: each authenticated RPC logged by its key's name

    @classmethod
    def of(cls, settings: Settings) -> GrpcLimits:
        return cls(settings.HOST, settings.GRPC_PORT, settings.MAX_BODY_BYTES, settings.TIMEOUT_BODY,
                   settings.TIMEOUT_GRACEFUL_SHUTDOWN, ConnectionLimits.of(settings), settings.ACCESS_LOG)


INVALID_TIMEOUT = object()  # a stream's deadline when its grpc-timeout header is not a timeout


class DeadlineHandler(ConnectionHandler):
    """grpclib's handler of one connection, except that a unary RPC's deadline is kept by
    :meth:`GrpcServer.unary`, not by grpclib, which answers UNKNOWN to one that has passed (or is
    not a timeout) by the time its handler starts (the loop may be busy for longer than the deadline)."""

    def accept(self, stream: Any, headers: list[tuple[str, str]], release_stream: Callable[[], Any]) -> None:
        method = self.mapping.get(dict(headers).get(":path", ""))
        if method is not None and method.cardinality is Cardinality.UNARY_UNARY:
            try:
                stream.deadline = Deadline.from_headers(headers)
            except ValueError:
                stream.deadline = INVALID_TIMEOUT
            headers = [(name, value) for name, value in headers if name != "grpc-timeout"]
        super().accept(stream, headers, release_stream)


class GrpcServer(Server):
    """grpclib's server with the limits of :class:`Call` and :class:`.connection.PolicedProtocol`."""

    def __init__(self, services: Collection[Any], limits: GrpcLimits, admission: Admission, queue: WorkQueue,
                 work: Collection[str], observe: Callable[[str, str, float, str | None], None],
                 groups: Mapping[str, str | None] | None = None, access: Access | None = None) -> None:
        """``work``: the RPCs (``/package.Service/Method``) whose messages are work: charged in full,
        refused for load, queued. ``observe``: told of each unary RPC's end (its path, code, seconds,
        and why its API key was refused, if it was).
        ``groups``: each RPC's API key group, which ``access`` checks before a message is read."""
        self.limits = limits
        self.groups = groups or {}
        self.access = access or Access(None)
        self.observe = observe
        self.admission = admission
        self.queue = queue
        self.work = set(work)
        self.connections: set[PolicedProtocol] = set()
        self.in_flight: set[asyncio.Task[Any]] = set()
        self.streaming: set[asyncio.Task[Any]] = set()  # the streaming RPCs' (health's Watch, reflection)
        self.stopped = False  # the drain is over: what still runs is cancelled
        super().__init__([Limited(service, self) for service in services])

    def _protocol_factory(self) -> PolicedProtocol:
        self.__gc_step__()
        handler = DeadlineHandler(self._mapping, self._codec, self._status_details_codec, self.__dispatch__)
        self._handlers.add(handler)
        return PolicedProtocol(handler, self._config, self._h2_config, limits=self.limits.connection,
                               connections=self.connections)

    async def start_listening(self, ssl: Any = None) -> None:
        """Listen on the limits' host and port; with ``ssl`` (an ``ssl.SSLContext`` whose ALPN is h2),
        TLS only: a plain-text client fails the handshake."""
        await self.start(self.limits.host, self.limits.port, ssl=ssl)
        log.info("gRPC (Open Inference Protocol) on %s:%d%s", self.limits.host, self.port, " over TLS" if ssl else "")

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def unary(self, path: str, func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``func`` served within the limits, once its API key may call it (``groups``' group of
        ``path``; with no keys, or a probe, nothing is checked), its message not yet read."""
        work = path in self.work
        group = self.group_of(path)

        async def serve(stream: Any) -> None:
            started = time.perf_counter()
            deadline = getattr(stream._stream, "deadline", None)  # DeadlineHandler's
            call = Call(stream, self, work, deadline if isinstance(deadline, Deadline) else None)
            task = asyncio.current_task()
            assert task is not None
            self.in_flight.add(task)
            code, refused = Status.OK, None
            try:
                if group is not None:
                    self.authorize(path, group, call)
                if deadline is INVALID_TIMEOUT:
                    raise InvalidInput("the grpc-timeout header is not a timeout")
                async with asyncio.timeout(None if call.deadline is None else call.deadline.time_remaining()):
                    await func(call)
            except TimeoutError:
                code = Status.DEADLINE_EXCEEDED
                raise GRPCError(code, "the deadline passed") from None
            except ServiceError as error:
                code, refused = status_of(error), error.reason if isinstance(error, REFUSED) else None
                await call.refuse(error)
            except GRPCError as error:
                code = error.status
                raise
            except asyncio.CancelledError:
                code = Status.CANCELLED
                if self.stopped:  # still running at the end of the drain: it gets a code, not a silent end
                    code = Status.UNAVAILABLE
                    raise GRPCError(code, "the server stopped (TIMEOUT_GRACEFUL_SHUTDOWN)") from None
                raise  # the client cancelled it, or its deadline passed: grpclib answers
            finally:
                call.release()
                self.in_flight.discard(task)
                self.observe(path, code.name, time.perf_counter() - started, refused)

        return serve

    def group_of(self, path: str) -> str | None:
        """The API key group that may call ``path`` (one no service declares: any known key); None
        when nothing is checked (no keys, or a probe)."""
        return self.groups.get(path, ANY_KEY) if self.access.enabled else None

    def authorize(self, path: str, group: str, call: Call) -> None:
        """The RPC's ``authorization`` metadata checked (REFUSED raised), before its message is read;
        with ACCESS_LOG, an authenticated call is logged by its key's name."""
        name = self.access.check(group, call.metadata.getall("authorization", []))
        if name is not None and self.limits.access_log:
            calls.info("api key %r: %s", name, path)

    def stream(self, path: str, func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """A streaming RPC: its messages bounded in size (:class:`.call.Call`), its deadline grpclib's,
        counted while it runs (see :meth:`stop`); its API key checked as a unary RPC's (health's Watch
        is a probe; reflection's needs a known key), a refusal observed as a unary RPC's end."""
        group = self.group_of(path)

        async def serve(stream: Any) -> None:
            call = Call(stream, self, work=False, deadline=None, unary=False)
            task = asyncio.current_task()
            assert task is not None
            self.streaming.add(task)
            try:
                if group is not None:
                    self.authorize(path, group, call)
                await func(call)
            except REFUSED as error:
                await call.refuse(error)
                self.observe(path, status_of(error).name, time.monotonic() - call.began, error.reason)
            except ServiceError as error:
                await call.refuse(error)
            finally:
                call.release()
                self.streaming.discard(task)

        return serve

    def drain(self) -> None:
        """Stop listening, and tell every connection to go away (see the module)."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.go_away()

    async def stop(self) -> None:
        """:meth:`drain`, then the unary RPCs in flight get ``TIMEOUT_GRACEFUL_SHUTDOWN`` to end, and
        the streaming ones :data:`LAST_WORD_SECONDS`; then every connection is closed (what still runs
        is cancelled)."""
        if self._server is None:
            return
        self.drain()
        if self.in_flight:
            done, pending = await asyncio.wait(set(self.in_flight), timeout=self.limits.grace)
            if pending:
                log.warning("gRPC: %d RPC(s) still running after TIMEOUT_GRACEFUL_SHUTDOWN: cancelled", len(pending))
        if self.streaming:
            await asyncio.wait(set(self.streaming), timeout=LAST_WORD_SECONDS)
        self.stopped = True
        self.close()  # cancels what still runs (answered UNAVAILABLE: :meth:`unary`)
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=CLOSE_SECONDS)
        for connection in list(self.connections):
            connection.close()
        try:
            await asyncio.wait_for(self.wait_closed(), CLOSE_SECONDS)
        except TimeoutError:
            log.warning("gRPC: handlers still ending after %.1f s", CLOSE_SECONDS)


class Limited:
    """A service whose unary RPCs are served through :meth:`GrpcServer.unary`, its streaming ones
    (Watch, reflection's) through :meth:`GrpcServer.stream`."""

    def __init__(self, service: Any, server: GrpcServer) -> None:
        self.service = service
        self.server = server

    def __mapping__(self) -> dict[str, Handler]:
        mapping = {}
        for path, handler in self.service.__mapping__().items():
            unary = handler.cardinality is Cardinality.UNARY_UNARY
            handler = handler._replace(func=self.server.unary(path, handler.func) if unary else self.server.stream(path, handler.func))
            mapping[path] = handler
        return mapping
