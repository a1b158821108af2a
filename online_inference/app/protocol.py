"""uvicorn's httptools protocol with a deadline for each request's headers, telling the
application how many requests are in progress, letting it answer whole requests without a task,
and with one keep-alive timer per connection instead of one per request.

uvicorn times out idle keep-alive connections but not a client that sends its headers slowly
(slowloris): such connections would stay open for ever. Here every request must finish its
headers within ``TIMEOUT_HEADERS`` seconds of its first bytes (or of the connection opening),
else the connection is closed.

Each request's scope carries the ASGI extension ``IN_PROGRESS``: the server's set of request
tasks (headers read, answer not finished), live — ``len()`` of it when the application looks.
A request alone needs no company for its model call (see :mod:`batching`): the application
reads it to skip the wait.

An application that answers some requests from their whole body (:class:`AnswersWhole`: the
service's hot path, for valid ``/predict`` bodies) is asked at each request's headers whether this
one is such. If so, uvicorn's task for it is not started: the body is gathered and given to the
application whole, and the application replies — at once if the request is alone (this is the
server's only connection, no request task runs and none waits behind it, so no other request could
share its model call), else from the callback of the model call it shares — with the status,
headers and body. They are written as uvicorn's cycle would write them (its default headers,
``connection: close`` when the connection is to close) in one write. On a one-row ``/predict``
uvicorn's ASGI cycle costs more than the service's own work (a task and a turn of the event loop,
an event, the messages, two writes). Everything else keeps uvicorn's path: a request the
application declines (an invalid body, which it then explains) or fails to answer gets its task
after all, with the body already gathered; a client waiting for ``100 Continue``, a body of
unknown length and the access log (written by the cycle) never leave it, nor does an application
that uvicorn wraps in its middleware (proxy headers, trace logging: the service runs without).
Pipelined requests are answered in order either way: uvicorn starts the next one only when the
one before is answered.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Optional, Protocol, runtime_checkable

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from online_inference.app.config import get_settings

Headers = list[tuple[bytes, bytes]]
WholeAnswer = tuple[int, Headers, bytes]  # status, headers, body
Reply = Callable[[Optional[WholeAnswer]], None]  # the answer to write, or None: run the request as a task


IN_PROGRESS = "heart.requests_in_progress"


@runtime_checkable
class AnswersWhole(Protocol):
    def takes_whole(self, scope: dict[str, Any]) -> bool:
        """Whether to give this request (its headers read) whole, rather than start its task."""

    def answer_whole(self, scope: dict[str, Any], body: bytes, alone: bool, reply: Reply) -> bool:
        """Take the whole body; call ``reply`` once (at once, or later from a callback) with a
        :data:`WholeAnswer`, or with None to have the request run as a task after all. ``alone``: no
        other request can be answered before this one is. False: declined, run it as a task now."""


class ServiceProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = get_settings().TIMEOUT_HEADERS
        self.header_timer: asyncio.TimerHandle | None = None
        self.awaiting_headers = False
        # The access log (ACCESS_LOG) is written by uvicorn's cycle: with it on, every request keeps that path.
        self.whole = self.app if isinstance(self.app, AnswersWhole) and not self.config.access_log else None
        self.gathering: RequestResponseCycle | None = None  # a request taken whole, its body arriving
        self.idle_since: float | None = None  # the loop's time of the last answer, while no data has come since

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
        # A request answered at once, inside the parsing of what arrived, left the connection
        # idle; the next request in the same data makes it busy again.
        self._unset_keepalive_if_required()

    def on_headers_complete(self) -> None:
        self.awaiting_headers = False
        self.cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_header_timer()
        self.gathering = None
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
        super().connection_lost(exc)

    # Keep-alive. uvicorn arms a timer when an answer completes and cancels it when data arrives: a
    # timer made and unmade for every request (a tenth of a one-row /predict here). Here a
    # connection has one timer, armed when it falls idle with none armed. When it fires, it closes
    # the connection if it has been idle TIMEOUT_KEEP_ALIVE seconds since its last answer, re-arms
    # for the rest of that time if it has been idle for less, and if the connection is busy,
    # leaves the next answer to arm it again. Idle connections close as with uvicorn's timer.

    def _unset_keepalive_if_required(self) -> None:
        """uvicorn calls this when data arrives: the connection is busy, not idle."""
        self.idle_since = None

    def on_response_complete(self) -> None:
        """uvicorn's, but arming the keep-alive timer only if none is armed."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.idle_since = None
        self.flow.resume_reading()
        if self.pipeline:  # the next pipelined request, which waited for this answer
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.arm_keep_alive_timer(self.idle_since + self.timeout_keep_alive)

    def arm_keep_alive_timer(self, deadline: float) -> None:
        self.timeout_keep_alive_task = self.loop.call_at(deadline, self.timeout_keep_alive_handler)

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        if self.idle_since is None or self.transport.is_closing():
            return
        deadline = self.idle_since + self.timeout_keep_alive
        if self.loop.time() < deadline:
            self.arm_keep_alive_timer(deadline)
        else:
            self.transport.close()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """uvicorn starts a request here: at its headers, or (pipelined) once the one before it on
        the connection is answered. A request the application takes whole waits for its body."""
        if app is self.app and self.whole is not None and not cycle.waiting_for_100_continue and self.whole.takes_whole(cycle.scope):
            if cycle.more_body:
                self.gathering = cycle
                return
            if self.give_whole(cycle):
                return
        super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        if self.gathering is None:
            return super().on_body(body)
        self.gathering.body += body  # its declared length is within the application's limit

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle, self.gathering = self.gathering, None
        if cycle is not None and not self.give_whole(cycle):
            super()._start_asgi_task(cycle, self.app)

    def give_whole(self, cycle: RequestResponseCycle) -> bool:
        assert self.whole is not None
        alone = len(self.connections) == 1 and not self.tasks and not self.pipeline
        return self.whole.answer_whole(cycle.scope, bytes(cycle.body), alone, functools.partial(self.reply, cycle))

    def reply(self, cycle: RequestResponseCycle, answer: Optional[WholeAnswer]) -> None:
        """Write the application's answer to ``cycle``'s request as uvicorn's cycle would, in one
        write; None: run the request as a task after all."""
        if cycle.disconnected:
            return
        if answer is None:
            return super()._start_asgi_task(cycle, self.app)
        status, headers, body = answer
        content = [STATUS_LINE[status]]
        for name, value in (*cycle.default_headers, *headers):
            content += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:  # HTTP/1.0, the client's "Connection: close", or the server stopping
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        self.transport.write(b"".join(content))
        cycle.response_started = cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()  # the next pipelined request, or the keep-alive timer

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
