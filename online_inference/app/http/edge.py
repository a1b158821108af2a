"""The server's edge: uvicorn's httptools protocol, plus the limits and deadlines it lacks and the
fix of one parser bug. Parsing, answers, keep-alive, pipelining and flow control stay uvicorn's;
every override calls the parent (checked on the uvicorn release pinned in requirements/).

- A request's head is held here until it is complete, then given to the parser: a request target
  over ``MAX_REQUEST_TARGET_BYTES`` answers 414 and a header block over ``MAX_HEADER_BYTES`` 431,
  without reading further; a head not complete ``TIMEOUT_HEADERS`` after its first byte (bare CRLFs
  included) answers 408, and so does a body not complete ``TIMEOUT_BODY`` after its head. Each
  closes the connection. (The application answers whole: nothing of its answer is written while
  its body is still arriving, so a 408 never cuts into one.) A deadline's timer is armed only when
  a read ends with the head or the body incomplete: most requests arrive whole.
- A connection without a request for ``TIMEOUT_KEEP_ALIVE`` (since it opened, or since its last
  answer) is closed, whatever it trickles: a request begins with its first byte that is not part
  of a CRLF, and from there ``TIMEOUT_HEADERS`` rules.
- An ``Upgrade`` header is removed before the parser sees it: httptools then drops the request's
  body (uvicorn #2722, httptools #124), and RFC 9110 §7.8 lets a server ignore the offer (``curl
  --http2`` and Java's RestClient send ``Upgrade: h2c``).
- Each request is charged to the memory budget before its body is read (:mod:`charging`, the
  class this one extends); one that does not fit is refused here.
- A refusal that leaves a body unread closes the connection the way HTTP servers must (RFC 9112
  §9.6; nginx's lingering close): the answer, then the end of our side (FIN), then whatever the
  client still sends is read and dropped until it stops, at most ``TIMEOUT_BODY``. A plain close
  would reset the connection (unread bytes make the kernel send RST), and a client still sending
  would lose the answer.
- On shutdown uvicorn closes every connection between requests at once, though a request may be on
  its way (the client connected just before the stop). Here such a connection closes at its idle
  deadline, or after answering its next request (the front says ``connection: close`` while
  draining).

- Behind TLS, a connection closed between requests (its idle deadline, uvicorn's keep-alive
  timer) does not wait for the client's close_notify: uvloop waits 30 s for it (its
  ``ssl_shutdown_timeout``, which uvicorn does not expose), and an idle pooled connection, which
  reads nothing, never sends it, so a drain waited that long. RFC 8446 §6.1 lets the closer not
  wait: the TCP connection ends ``TLS_CLOSE_NOTIFY_WAIT`` after the close.

A pipelined request whose head comes in the same read as the body before it goes to the parser
unscreened: its head is then counted as it arrives, to the same limit, but its Upgrade is not removed.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from dataclasses import dataclass
from typing import Any

from online_inference.app.http.charging import ChargingProtocol, refusal
from online_inference.app.settings import Settings
from online_inference.app.errors import HeaderFieldsTooLarge, RequestTimeout, ServiceError, URITooLong

UPGRADE = re.compile(rb"\r\nupgrade:[^\r\n]*", re.IGNORECASE)
TLS_CLOSE_NOTIFY_WAIT = 1.0  # seconds an idle TLS connection's close waits for the client's close_notify


def close_idle(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
    """Close a connection between requests; behind TLS, without waiting for close_notify (see above)."""
    if transport.is_closing():
        return
    transport.close()
    if transport.get_extra_info("sslcontext") is not None:
        loop.call_later(TLS_CLOSE_NOTIFY_WAIT, transport.abort)


@dataclass(frozen=True)
class EdgeLimits:
    max_target: int
    max_header: int
    header_timeout: float
    body_timeout: float
    idle_timeout: float

    @functools.cached_property
    def shortest(self) -> int:
        """A head shorter than this is within both size limits."""
        return min(self.max_target, self.max_header)

    def problem_of_head(self, head: bytes | bytearray, start: int, end: int) -> ServiceError | None:
        """What is wrong with the head in ``head[start:end]`` (perhaps incomplete), if anything."""
        line_end = head.find(b"\r\n", start, end)
        space = head.find(b" ", start, end)
        target_end = head.rfind(b" ", space + 1, line_end) if line_end >= 0 else end
        if space >= 0 and target_end - space - 1 > self.max_target:
            return URITooLong(f"request target over MAX_REQUEST_TARGET_BYTES ({self.max_target} bytes)")
        if (end - line_end if line_end >= 0 else end - start - self.max_target) > self.max_header:
            return HeaderFieldsTooLarge(f"header block over MAX_HEADER_BYTES ({self.max_header} bytes)")
        return None

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(settings.MAX_REQUEST_TARGET_BYTES, settings.MAX_HEADER_BYTES, settings.TIMEOUT_HEADERS,
                   settings.TIMEOUT_BODY, settings.TIMEOUT_KEEP_ALIVE)


class EdgeProtocol(ChargingProtocol):
    __slots__ = ("limits", "head", "in_message", "in_head", "head_seen", "unanswered", "deadline", "idle_timer",
                 "idle_since")  # (why slots: ChargingProtocol's)

    def __init__(self, *args: Any, limits: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.head = bytearray()  # the next request's head so far, held until complete
        self.in_message = self.in_head = False  # where the parser is: inside a message; inside its head
        self.head_seen = 0  # bytes of a head inside the parser (a pipelined one)
        self.unanswered = 0  # requests begun and not yet answered
        self.deadline: asyncio.TimerHandle | None = None  # of the head or the body in progress
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0  # the loop's time of the last answer (or of the connection)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.idle_since = self.loop.time()
        self.arm_idle_timer(self.idle_since)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        if self.in_message:  # a body, or a pipelined head the parser holds
            self.head_seen += len(data) if self.in_head else 0
            if self.head_seen > self.limits.max_header:
                return self.refuse(HeaderFieldsTooLarge(f"header block over MAX_HEADER_BYTES ({self.limits.max_header} bytes)"))
            super().data_received(data)
        elif self.head:
            self.hold_head(data)
        else:  # a new request's first bytes
            self.head_started = time.monotonic()
            end = data.find(b"\r\n\r\n")
            if 0 < end < self.limits.shortest and data[0] not in b"\r\n" and not UPGRADE.search(data, 0, end + 2):
                super().data_received(data)  # most requests: a whole head in one read, nothing to remove: given as it came
            else:
                self.hold_head(data)
        if self.deadline is None and (self.head or self.in_message) and not self.transport.is_closing():
            self.arm_deadline()  # a read ended with a request incomplete

    def hold_head(self, data: bytes) -> None:
        """Add ``data`` to the head held; give it to the parser once complete, unless it is refused."""
        self.head += data
        start = len(self.head) - len(self.head.lstrip(b"\r\n"))  # CRLFs before a request line are allowed
        end = self.head.find(b"\r\n\r\n", start)
        problem = self.limits.problem_of_head(self.head, start, end if end >= 0 else len(self.head))
        if problem is not None:
            return self.refuse(problem)
        if end >= 0:
            head, self.head = bytes(self.head), bytearray()
            self.cancel_deadline()
            super().data_received(head[:start] + UPGRADE.sub(b"", head[start:end + 2]) + head[end + 2:])
        elif start < len(self.head) and self.idle_timer is not None:  # a request has begun: no longer idle
            self.idle_timer.cancel()
            self.idle_timer = None
            super().data_received(b"")  # uvicorn's keep-alive timer stops when data arrives (held here)

    def on_message_begin(self) -> None:
        if self.lingering:  # refused: what follows in the same read is not served
            return
        super().on_message_begin()
        self.in_message = self.in_head = True
        self.head_seen = 0
        self.unanswered += 1

    def on_headers_complete(self) -> None:
        if self.lingering:
            return
        self.in_head = False
        if self.deadline is not None:  # the head's; the body's is armed if the read ends before the body does
            self.cancel_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self.lingering:
            return
        super().on_message_complete()
        self.in_message = False
        if self.deadline is not None:
            self.cancel_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.unanswered -= 1
        self.idle_since = self.loop.time()
        if self.unanswered == 0 and self.idle_timer is None and not self.transport.is_closing():
            self.arm_idle_timer(self.idle_since)

    def shutdown(self) -> None:
        """uvicorn's, for a connection with a request in progress (one between requests: see above)."""
        if self.unanswered:
            super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.deadline, self.idle_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def arm_deadline(self) -> None:
        if self.in_message and not self.in_head:
            timeout, error = self.limits.body_timeout, "the request body did not arrive within TIMEOUT_BODY"
        else:
            timeout, error = self.limits.header_timeout, "the request head did not arrive within TIMEOUT_HEADERS"
        self.deadline = self.loop.call_later(timeout, self.refuse, RequestTimeout(f"{error} ({timeout:g} s)"))

    def cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def arm_idle_timer(self, since: float) -> None:
        self.idle_timer = self.loop.call_at(since + self.limits.idle_timeout, self.close_if_idle)

    def close_if_idle(self) -> None:
        """One timer a connection: an idle one closes when its time is up, a busy one re-arms at its next answer."""
        self.idle_timer = None
        if self.unanswered or self.transport.is_closing() or self.lingering:
            return
        if self.loop.time() >= self.idle_since + self.limits.idle_timeout:
            close_idle(self.transport, self.loop)
        else:
            self.arm_idle_timer(self.idle_since)

    def timeout_keep_alive_handler(self) -> None:  # uvicorn's own idle close
        close_idle(self.transport, self.loop)
        super().timeout_keep_alive_handler()

    def refuse(self, error: ServiceError, linger: bool = False) -> None:
        """Answer ``error`` (unless an earlier answer is due: it would cut into it) and close; ``linger``: a body is left unread."""
        done, self.lingering = self.lingering or self.transport.is_closing(), True
        own_answer_due, self.head = self.unanswered == (0 if self.head else 1) and not self.discarding, bytearray()
        if done:
            return
        self.cancel_deadline()
        if not own_answer_due and linger and self.cycle is not None:  # an earlier answer first, then the close
            self.cycle.keep_alive = False
            return self.transport.pause_reading()
        if own_answer_due:
            self.transport.write(refusal(error))
        if not (own_answer_due and linger and self.transport.can_write_eof()):
            return self.transport.close()
        self.transport.write_eof()  # then close at the client's FIN (uvicorn's eof_received), or at TIMEOUT_BODY
        self.deadline = self.loop.call_later(self.limits.body_timeout, self.transport.close)
