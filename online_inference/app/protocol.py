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

Even the scope and the cycle of such a request are not built at its headers (at 1 connection they
were a sixth of a one-row ``/predict``): when its body has arrived in the same read and it is
alone, it is answered there and then and needs neither. Otherwise — another request in progress,
the body still arriving at the end of the read, the application declining it — they are built
before the read ends, just as uvicorn builds them at the headers, and the request goes on as above;
nothing outside the read (a shutdown, a lost connection) ever sees a request without its cycle.
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
        """Whether to give this request (its headers read) whole, rather than start its task.
        ``scope`` may hold only its type, method, path and headers."""

    def answer_whole(self, scope: dict[str, Any], body: bytes, alone: bool, reply: Reply) -> bool:
        """Take the whole body; call ``reply`` once (at once, or later from a callback) with a
        :data:`WholeAnswer`, or with None to have the request run as a task after all. ``alone``: no
        other request can be answered before this one is, so answer at once, before returning.
        False: declined, run it as a task now. ``scope`` may hold only what ``takes_whole`` got."""


class ServiceProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = get_settings().TIMEOUT_HEADERS
        self.header_timer: asyncio.TimerHandle | None = None
        self.awaiting_headers = False
        # The access log (ACCESS_LOG) is written by uvicorn's cycle: with it on, every request keeps that path.
        self.whole = self.app if isinstance(self.app, AnswersWhole) and not self.config.access_log else None
        self.gathering: RequestResponseCycle | None = None  # a request taken whole, its body arriving
        # The body so far of a request that may be answered whole, its scope and cycle not built
        # (see on_headers_complete); None when there is no such request.
        self.deferred_body: bytes | None = None
        self.idle_since: float | None = None  # the loop's time of the last answer, while no data has come since

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.deferred_body is not None:  # its body is still arriving: it gets what uvicorn builds at the headers
            self.materialize()
        # Most requests arrive whole: a timer is armed only for headers still incomplete when
        # what has arrived is parsed, not armed and cancelled for every request.
        if self.awaiting_headers and self.header_timer is None:
            self.arm_header_timer()

    def on_message_begin(self) -> None:
        """What the headers need; the scope is built when the request needs one (:meth:`build_scope`)."""
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.awaiting_headers = True
        # A request answered at once, inside the parsing of what arrived, left the connection
        # idle; the next request in the same data makes it busy again.
        self._unset_keepalive_if_required()

    def build_scope(self) -> None:
        """uvicorn's scope for the request whose headers were read, with the IN_PROGRESS extension."""
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()  # builds the scope, and resets what the parser callbacks collected
        self.url, self.expect_100_continue = url, expect_100_continue
        self.headers.extend(headers)  # the scope's list
        self.scope.setdefault("extensions", {})[IN_PROGRESS] = self.tasks  # type: ignore[typeddict-item]

    def on_headers_complete(self) -> None:
        self.awaiting_headers = False
        self.cancel_header_timer()
        if self.may_defer():
            self.deferred_body = b""
            return
        self.build_scope()
        super().on_headers_complete()

    def may_defer(self) -> bool:
        """Whether the application may answer this request whole: then its scope and cycle are built
        only if it turns out to need them (:meth:`materialize`; see the module's doc)."""
        return (self.whole is not None and self.url == b"/predict" and not self.root_path and not self.expect_100_continue
                and self.parser.get_method() == b"POST" and not self.parser.should_upgrade()
                and self.whole.takes_whole(self.deferred_scope()))

    def deferred_scope(self) -> dict[str, Any]:
        """What the application is told of a deferred request (``POST /predict``, no query string)."""
        return {"type": "http", "method": "POST", "path": "/predict", "headers": self.headers}

    def materialize(self) -> None:
        """Build for a deferred request what uvicorn builds at a request's headers (its scope, its
        cycle: started, gathering its body, or queued behind the connection's request in progress),
        and hand it the body read so far. Called within the read that brought its headers or its
        end, so nothing (a shutdown, a lost connection) could meanwhile have missed its cycle."""
        body, self.deferred_body = self.deferred_body, None
        self.build_scope()
        super().on_headers_complete()
        if body:
            self.on_body(body)

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
        if self.deferred_body is not None:
            self.deferred_body += body  # its declared length is within the application's limit
        elif self.gathering is None:
            super().on_body(body)
        else:
            self.gathering.body += body

    def on_message_complete(self) -> None:
        deferred = self.deferred_body is not None
        alone = deferred and self.is_alone()
        if alone and self.answer_now():
            return
        if deferred:
            self.materialize()
        super().on_message_complete()
        cycle, self.gathering = self.gathering, None
        # A request alone that was not answered now was declined, or its answer failed: its task.
        if cycle is not None and (alone or not self.give_whole(cycle)):
            super()._start_asgi_task(cycle, self.app)

    def give_whole(self, cycle: RequestResponseCycle) -> bool:
        """Give ``cycle``'s request whole; it is the connection's request in progress."""
        assert self.whole is not None
        alone = self.nothing_else_runs()
        return self.whole.answer_whole(cycle.scope, bytes(cycle.body), alone, functools.partial(self.reply, cycle))

    def nothing_else_runs(self) -> bool:
        """This is the server's only connection, no request task runs and none waits behind the
        request at hand: nothing could share a model call with it."""
        return len(self.connections) == 1 and not self.tasks and not self.pipeline

    def is_alone(self) -> bool:
        """Whether the deferred request is alone: nothing else runs (:meth:`nothing_else_runs`) and
        no request is in progress before it on this connection, so no answer is due before its."""
        return (self.nothing_else_runs() and (self.cycle is None or self.cycle.response_complete)
                and (self.limit_concurrency is None or self.limit_concurrency > 1))  # else uvicorn answers 503

    def answer_now(self) -> bool:
        """Answer the deferred request, alone, without a scope or a cycle. False: the application
        declined it or could not answer (a request alone is answered before answer_whole returns)."""
        assert self.whole is not None
        answers: list[Optional[WholeAnswer]] = []
        assert self.deferred_body is not None
        taken = self.whole.answer_whole(self.deferred_scope(), self.deferred_body, True, answers.append)
        if not taken or not answers or answers[0] is None:
            return False
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        self.write_answer(answers[0], self.server_state.default_headers, keep_alive)
        self.deferred_body = None
        self.on_response_complete()  # the keep-alive timer
        return True

    def reply(self, cycle: RequestResponseCycle, answer: Optional[WholeAnswer]) -> None:
        """Write the application's answer to ``cycle``'s request as uvicorn's cycle would, in one
        write; None: run the request as a task after all."""
        if cycle.disconnected:
            return
        if answer is None:
            return super()._start_asgi_task(cycle, self.app)
        self.write_answer(answer, cycle.default_headers, cycle.keep_alive)
        cycle.response_started = cycle.response_complete = True
        cycle.on_response()  # the next pipelined request, or the keep-alive timer

    def write_answer(self, answer: WholeAnswer, default_headers: Headers, keep_alive: bool) -> None:
        """The answer as uvicorn writes one (its default headers, ``connection: close`` when the
        connection is to close: HTTP/1.0, the client's "Connection: close", the server stopping),
        in one write; then the connection closes if it is to."""
        status, headers, body = answer
        content = [STATUS_LINE[status]]
        for name, value in (*default_headers, *headers):
            content += (name, b": ", value, b"\r\n")
        if not keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        self.transport.write(b"".join(content))
        if not keep_alive:
            self.transport.close()

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
