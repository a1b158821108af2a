"""The edge's charge of every request to the memory budget (:mod:`dataplane.admission`), on uvicorn's
httptools protocol, through the hooks it defines (each calls the parent).

- When a request's head is complete, before its body is read, it is charged its measured worst
  case (a chunked body: as each part arrives). One that does not fit now is answered 503 with
  ``Retry-After`` at once, and its body is dropped as it arrives, never held (nginx's discarded
  body): the connection stays open for the client's retry. Closed, it would cost the client a
  reconnection, and its retry would wait in the kernel's accept queue, unseen by the service's
  deadline, for as long as a busy loop takes to accept it (libuv accepts one connection a turn:
  libuv#3696). Behind an answer still due, and when the body could never fit (413), the request
  is refused by the edge's :meth:`refuse` instead, with a lingering close (:mod:`edge`).
- The charge is held until the answer is written out: the transport's write buffer is set to
  pause at any byte, so ``resume_writing`` says when it is empty. A lost connection gives back
  everything it held.
- The request's :class:`Ticket` rides in the ASGI scope's extensions (:data:`TICKET`): the front
  reads when its first byte arrived, to shed it if it waited too long.
"""

from __future__ import annotations

import asyncio
import http
import time
from collections import deque
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from online_inference.app.dataplane.admission import TICKET, Admission, Ticket
from online_inference.app.http.body import body_framing
from online_inference.app.errors import Overloaded, ServiceError, error_body, error_headers


def refusal(error: ServiceError, close: bool = True) -> bytes:
    """The whole answer to a request refused at the edge (``close``: the connection closes after it)."""
    body = error_body(error)
    headers = "".join(f"{name}: {value}\r\n" for name, value in error_headers(error).items())
    closing = "connection: close\r\n" if close else ""
    head = (f"HTTP/1.1 {error.status_code} {http.HTTPStatus(error.status_code).phrase}\r\n{headers}"
            f"content-length: {len(body)}\r\n{closing}\r\n")
    return head.encode() + body


class ChargingProtocol(HttpToolsProtocol):
    # Slots, not the instance's dict: uvicorn's protocol sets 27 attributes, and past 28 or so every
    # attribute access on the instance (uvicorn's own included) gets slower. Measured: 2.5 % of a
    # one-row request's throughput (docs/ARCHITECTURE.md, "What it costs a request").
    __slots__ = ("admission", "tickets", "written", "head_started", "lingering", "discarding")

    def __init__(self, *args: Any, admission: Admission, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admission = admission
        self.tickets: deque[Ticket] = deque()  # the charges of the requests not yet answered, in order
        self.written: list[Ticket] = []  # those answered whose answer is still in the write buffer
        self.head_started = 0.0  # time.monotonic() at the first byte of the head being read (the edge's; a
        # pipelined head's, read with the end of the message before it: that end's)
        self.lingering = False  # refused: nothing more is parsed, what still arrives is dropped (the edge's)
        self.discarding = False  # answered 503 at its head: the rest of the request's body is dropped

    def refuse(self, error: ServiceError, linger: bool = False) -> None:
        """Answer ``error`` and close, lingering if ``linger`` (the edge's)."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # resume_writing() then says the buffer is empty. A TCP transport pauses over the high-water
        # mark, uvloop's TLS transport at it (size >= high: sslproto's _control_app_writing), where
        # 0 would pause it for good and no answer body would be written: behind TLS, 1 pauses at any byte.
        transport.set_write_buffer_limits(high=1 if transport.get_extra_info("sslcontext") is not None else 0)

    def on_headers_complete(self) -> None:
        try:
            declared, chunked = body_framing(self.headers)
            ticket = self.admission.admit(declared or 0, chunked, self.head_started)
        except Overloaded as error:
            return self.turn_away(error)
        except ServiceError as error:
            return self.refuse(error, linger=True)
        self.tickets.append(ticket)
        self.scope.setdefault("extensions", {})[TICKET] = ticket  # type: ignore[typeddict-item]
        super().on_headers_complete()

    def turn_away(self, error: Overloaded) -> None:
        """Answer 503 now, drop the body as it comes, then serve the connection's next request."""
        if self.tickets or self.expect_100_continue or not self.parser.should_keep_alive():
            return self.refuse(error, linger=True)  # an answer before it is due; the client waits to send; or it closes
        self.transport.write(refusal(error, close=False))
        self.discarding = True
        self.tickets.append(Ticket(self.admission, self.head_started, 0, 0, False, True))  # (charged nothing)

    def on_body(self, body: bytes) -> None:
        if self.lingering or self.discarding:
            return
        if self.tickets and not self.cycle.response_complete and self.tickets[-1].chunked:  # (answered: dropped)
            try:
                self.tickets[-1].grow(len(body))
            except ServiceError as error:
                return self.refuse(error, linger=True)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self.discarding:  # its answer went at its head: now it is complete
            self.discarding = False
            self.head_started = time.monotonic()  # a head that follows in this read begins now
            return self.on_response_complete()
        super().on_message_complete()
        if self.tickets:
            ticket = self.tickets[-1]
            ticket.body_read()
            self.head_started = ticket.since  # a head that follows in this read begins now, not at this one's first byte

    def on_response_complete(self) -> None:
        ticket = self.tickets.popleft()
        if self.transport.get_write_buffer_size():
            self.written.append(ticket)  # released once the answer is out: resume_writing()
        else:
            ticket.release()
        super().on_response_complete()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.release_written()

    def release_written(self) -> None:
        for ticket in self.written:
            ticket.release()
        self.written.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.release_written()
        for ticket in self.tickets:
            ticket.release()
        self.tickets.clear()
        super().connection_lost(exc)
