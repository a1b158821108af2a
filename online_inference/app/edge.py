"""The server's edge: uvicorn's httptools protocol, plus the limits and deadlines it lacks and the
fix of one parser bug. Parsing, answers, keep-alive, pipelining and flow control stay uvicorn's;
every override calls the parent (checked on the uvicorn release pinned in requirements/).

- A request's head is held here until it is complete, then given to the parser: a request target
  over ``MAX_REQUEST_TARGET_BYTES`` answers 414 and a header block over ``MAX_HEADER_BYTES`` 431,
  without reading further; a head not complete ``TIMEOUT_HEADERS`` after its first byte (bare CRLFs
  included) answers 408. Each closes the connection.
- A connection without a request for ``TIMEOUT_KEEP_ALIVE`` (since it opened, or since its last
  answer) is closed, whatever it trickles: a request begins with its first byte that is not part
  of a CRLF, and from there ``TIMEOUT_HEADERS`` rules.
- An ``Upgrade`` header is removed before the parser sees it: httptools then drops the request's
  body (uvicorn #2722, httptools #124), and RFC 9110 §7.8 lets a server ignore the offer (``curl
  --http2`` and Java's RestClient send ``Upgrade: h2c``).
- On shutdown uvicorn closes every connection between requests at once, though a request may be on
  its way (the client connected just before the stop). Here such a connection closes at its idle
  deadline, or after answering its next request (the front says ``connection: close`` while
  draining).

A pipelined request whose head comes in the same read as the body before it goes to the parser
unscreened: its head is then counted as it arrives, to the same limit, but its Upgrade is not removed.
"""

from __future__ import annotations

import asyncio
import http
import re
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from online_inference.app.config import Settings
from online_inference.app.errors import HeaderFieldsTooLarge, RequestTimeout, ServiceError, URITooLong, error_body

UPGRADE = re.compile(rb"\r\nupgrade:[^\r\n]*", re.IGNORECASE)


@dataclass(frozen=True)
class EdgeLimits:
    max_target: int
    max_header: int
    header_timeout: float
    idle_timeout: float

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(settings.MAX_REQUEST_TARGET_BYTES, settings.MAX_HEADER_BYTES, settings.TIMEOUT_HEADERS,
                   settings.TIMEOUT_KEEP_ALIVE)


def refusal(error: ServiceError) -> bytes:
    """The whole answer to a request refused at the edge; the connection closes after it."""
    body = error_body(error)
    head = (f"HTTP/1.1 {error.status_code} {http.HTTPStatus(error.status_code).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


class EdgeProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.head = bytearray()  # the next request's head so far, held until complete
        self.in_message = self.in_head = False  # where the parser is: inside a message; inside its head
        self.head_seen = 0  # bytes of a head inside the parser (a pipelined one)
        self.unanswered = 0  # requests begun and not yet answered
        self.head_timer: asyncio.TimerHandle | None = None
        self.idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        if self.in_message:  # a body, or a pipelined head the parser holds
            self.head_seen += len(data) if self.in_head else 0
            if self.head_seen > self.limits.max_header:
                return self.refuse(HeaderFieldsTooLarge(f"header block over MAX_HEADER_BYTES ({self.limits.max_header} bytes)"))
            return super().data_received(data)
        if not self.head:
            self.arm_head_timer()  # the first byte of a request
        self.head += data
        start = len(self.head) - len(self.head.lstrip(b"\r\n"))  # CRLFs before a request line are allowed
        end = self.head.find(b"\r\n\r\n", start)
        problem = self.problem_of_head(start, end if end >= 0 else len(self.head))
        if problem is not None:
            return self.refuse(problem)
        if end >= 0:
            head, self.head = bytes(self.head), bytearray()
            super().data_received(head[:start] + UPGRADE.sub(b"", head[start:end + 2]) + head[end + 2:])
        elif start < len(self.head) and self.idle_timer is not None:  # a request has begun: no longer idle
            self.idle_timer.cancel()
            self.idle_timer = None
            super().data_received(b"")  # uvicorn's keep-alive timer stops when data arrives (held here)

    def problem_of_head(self, start: int, end: int) -> ServiceError | None:
        """What is wrong with the head in ``self.head[start:end]`` (perhaps incomplete), if anything."""
        line_end = self.head.find(b"\r\n", start, end)
        space = self.head.find(b" ", start, end)
        target_end = self.head.rfind(b" ", space + 1, line_end) if line_end >= 0 else end
        if space >= 0 and target_end - space - 1 > self.limits.max_target:
            return URITooLong(f"request target over MAX_REQUEST_TARGET_BYTES ({self.limits.max_target} bytes)")
        if (end - line_end if line_end >= 0 else end - start - self.limits.max_target) > self.limits.max_header:
            return HeaderFieldsTooLarge(f"header block over MAX_HEADER_BYTES ({self.limits.max_header} bytes)")
        return None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_message = self.in_head = True
        self.head_seen = 0
        self.unanswered += 1
        if self.head_timer is None:
            self.arm_head_timer()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.in_head = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_message = False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.unanswered -= 1
        if self.unanswered == 0 and not self.transport.is_closing():
            self.arm_idle_timer()

    def shutdown(self) -> None:
        """uvicorn's, for a connection with a request in progress: it is answered, then closed. One
        between requests stays open until its idle deadline or its next answer (see above)."""
        if self.unanswered:
            super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.head_timer, self.idle_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def arm_head_timer(self) -> None:
        timeout = self.limits.header_timeout
        error = RequestTimeout(f"the request head did not arrive within TIMEOUT_HEADERS ({timeout:g} s)")
        self.head_timer = self.loop.call_later(timeout, self.refuse, error)

    def arm_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self.idle_timer = self.loop.call_later(self.limits.idle_timeout, self.close_if_idle)

    def close_if_idle(self) -> None:
        self.idle_timer = None
        if self.unanswered == 0:
            self.transport.close()

    def refuse(self, error: ServiceError) -> None:
        """Answer ``error`` (unless an earlier request's answer is still due: it would cut into it), and close."""
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.unanswered == int(self.in_head):
            self.transport.write(refusal(error))
        self.transport.close()
