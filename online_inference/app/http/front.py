"""The front: the outermost ASGI layer, what every request passes before it is answered.

- With ``API_KEYS_FILE``, a request's API key is checked first, before anything reads its body
  (:mod:`dataplane.access`: the path's group, as the protocols declare it, and every
  ``Authorization`` header): a refusal is answered here, 401 or 403 in the service's error body,
  counted in /metrics, its body unread (then dropped as it arrives, or, on a connection that
  closes after the answer, read and dropped before the close: :meth:`Front.refuse`). With
  ``ACCESS_LOG`` (uvicorn's access log: method, path, status) an authenticated call is logged by
  its key's name too, on ``online_inference.access`` (off by default, as a line per request costs
  a one-row /predict much: bench/results/access_cost.json). Without API_KEYS_FILE nothing is
  checked (one test).
- The body is read within its size limit (:mod:`body`), whoever reads it.
- ``HEAD`` is answered as ``GET``, without the body.
- A request for work (``POST``) waits for its turn once its body has arrived (:mod:`dataplane.workqueue`),
  and is shed if it waited past ``MAX_QUEUE_SECONDS``: 503 with ``Retry-After`` (before its body
  is read, if it waited that long already). Probes and metadata never wait.
- While the server drains, every answer says ``connection: close``.
- A request a protocol answers without the framework (``POST /predict``: its hot path, which
  answers valid bodies itself) goes there; everything else goes to the FastAPI application. Which
  requests is the composition's to say (:mod:`..compose`): the front knows no protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from online_inference.app.asgi import Message, raising, replay, whole_body
from online_inference.app.dataplane.admission import TICKET, Admission, Ticket
from online_inference.app.dataplane.access import REFUSED, PathGroups, calls
from online_inference.app.dataplane.plane import DataPlane
from online_inference.app.dataplane.rules import value_count_bound
from online_inference.app.dataplane.workqueue import WorkQueue
from online_inference.app.errors import Overloaded, ServiceError, error_body, error_headers
from online_inference.app.http.body import BodyLimit, body_framing
from online_inference.app.settings import Settings

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

class Front:
    def __init__(self, app: ASGI, plane: DataPlane, settings: Settings, direct: Mapping[tuple[str, str], ASGI],
                 groups: PathGroups | None = None):
        """``app`` answers every request but those ``direct`` routes by (method, path) to their own
        handler (each hands what it does not answer to ``app``); ``groups``: each path's API key group."""
        self.app = app
        self.plane = plane
        self.groups = groups or PathGroups({})
        self.access = plane.access if plane.access.enabled else None  # None: no API_KEYS_FILE, nothing to check
        self.log_calls = settings.ACCESS_LOG  # each authenticated call's key named, beside uvicorn's access log
        self.limit = BodyLimit(settings.MAX_BODY_BYTES)
        self.linger_seconds = settings.TIMEOUT_BODY / 2  # a refusal's body dropped before the edge's deadline
        self.direct = direct
        self.admission: Admission = plane.admission
        self.queue = WorkQueue(plane.admission)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.access is not None:
            refusal = self.refusal(scope)
            if refusal is not None:
                return await self.refuse(refusal, scope, receive, send)
        ticket = scope.get("extensions", {}).get(TICKET)  # the edge's (absent when served without it)
        if ticket is None:
            receive = self.limit.wrap(scope, receive)
        else:  # the edge read the body's framing
            receive = self.limit.wrap(scope, receive, None if ticket.chunked else ticket.body_bytes)
            if scope["method"] == "POST" and not (ticket.charged_in_full and self.queue.starts_now(ticket)):
                return await self.in_turn(ticket, scope, receive, send)
        handler, scope, send = self.route(scope, send)
        await handler(scope, receive, send)

    def refusal(self, scope: dict[str, Any]) -> ServiceError | None:
        """Why the request's API key may not call its path (counted), or None; with ACCESS_LOG its
        call is then logged by the key's name (a probe's is not: it needs none)."""
        assert self.access is not None
        authorization = [value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"]
        try:
            name = self.access.check(self.groups.group_of(scope["path"]), authorization)
        except REFUSED as error:
            self.plane.metrics.count_key_refusal(error.reason, "rest")
            return error
        if name is not None and self.log_calls:
            calls.info("api key %r: %s %s", name, scope["method"], scope["path"])
        return None

    async def refuse(self, error: ServiceError, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer ``error`` before the body is read. A connection that stays open drops the body as it
        comes (uvicorn's, after an answer, as for the edge's 503s). One that closes after the answer
        first reads and drops what the client still sends of a declared length, within half of
        TIMEOUT_BODY (the edge's deadline, whose 408 would follow the answer): a close with bytes
        unread resets the connection, and a client still sending loses the answer (the edge's
        lingering close, done in ASGI). A chunked body, which the edge would charge as it came, is
        not waited for."""
        send = without_body(send) if scope["method"] == "HEAD" else send
        send = closing(send) if self.plane.draining else send
        declared, _ = body_framing(scope["headers"])
        if not (declared and (self.plane.draining or closes_after(scope))):
            return await send_error(send, error)
        await send_error(send, error, more=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.linger_seconds):
                while (await receive()).get("more_body", False):
                    continue  # dropped: the client has its answer
        await send({"type": "http.response.body", "body": b""})

    async def in_turn(self, ticket: Ticket, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve a request for work that does not start it at once (most do: a small body, charged
        in full at its head, that has all come, and room in this turn of the loop): once its body
        has come, its values are charged and it waits for its turn (:mod:`dataplane.workqueue`).
        Refused for load, it is answered here (a 503 must cost little, or shedding takes the time
        it frees)."""
        if self.admission.too_late(ticket):
            return await send_error(send, self.admission.shed())
        try:
            if ticket.charged_in_full:  # a small body, all here: no need to read it first
                await self.queue.enter(ticket)
            else:
                receive = await self.wait_for_turn(ticket, receive)
        except Overloaded as error:
            return await send_error(send, error)
        except ServiceError as error:  # over the size limit: the route answers it, as it reads it
            receive = raising(error)
        handler, scope, send = self.route(scope, send)
        await handler(scope, receive, send)

    async def wait_for_turn(self, ticket: Ticket, receive: Any) -> Any:
        """The ``receive`` of the rest of the request, once its turn has come: here if its body
        came whole in the first message (most do), else when its last part is read."""
        message = await receive()
        values = value_count_bound(message.get("body", b""))
        body = whole_body(message)
        if body is not None:
            ticket.hold_values(values)
            await self.queue.enter(ticket)
            return replay(body, True, receive)

        async def receive_in_turn() -> Message:
            nonlocal values
            message = await receive()
            if message["type"] == "http.request":
                values += value_count_bound(message.get("body", b"")) - 1
                if not message.get("more_body", False):
                    ticket.hold_values(values)
                    await self.queue.enter(ticket)
            return message

        if message["type"] != "http.request":
            return receive  # a disconnect: uvicorn's receive says so again
        return replay(message.get("body", b""), False, receive_in_turn)

    def route(self, scope: dict[str, Any], send: Any) -> tuple[ASGI, dict[str, Any], Any]:
        """Who answers the request, with the scope and the ``send`` it answers through."""
        if self.plane.draining:
            send = closing(send)
        if scope["method"] == "HEAD":
            scope, send = {**scope, "method": "GET"}, without_body(send)
        return self.direct.get((scope["method"], scope["path"]), self.app), scope, send

    def drain(self) -> None:
        """The server is stopping: see :mod:`server`."""
        self.plane.drain()


async def send_error(send: Any, error: ServiceError, more: bool = False) -> None:
    """``error``'s answer, before the request's body is read (``more``: the answer ends later, with
    an empty last message)."""
    body = error_body(error)
    headers = [(k.encode(), v.encode()) for k, v in error_headers(error).items()]
    await send({"type": "http.response.start", "status": error.status_code,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": more})


def closes_after(scope: dict[str, Any]) -> bool:
    """Whether uvicorn closes the connection after this request's answer: HTTP/1.0, or ``Connection: close``."""
    return scope["http_version"] == "1.0" or any(
        name == b"connection" and b"close" in value.lower() for name, value in scope["headers"])


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
