"""One gRPC connection: grpclib's HTTP/2 protocol and its events, plus what they lack (each
override calls the parent; checked on the grpclib and h2 releases pinned in requirements/, by
tests/grpc/test_hooks.py).

- **Streams**: the connection's ``MAX_CONCURRENT_STREAMS`` is ``GRPC_MAX_CONCURRENT_STREAMS`` (h2
  sends 100 by default, and grpclib has no setting for it). A client that opens more breaks the
  protocol, and h2 ends its connection.
- **Pings**: h2 answers every PING. Here a PING that comes sooner than
  ``GRPC_MIN_PING_INTERVAL_SECONDS`` after the client's last one, when nothing was sent to it in
  between, is a strike; past ``GRPC_MAX_PING_STRIKES`` the connection ends with GOAWAY
  ENHANCE_YOUR_CALM and ``too_many_pings``, as gRPC C-core's server does.
- **Protocol errors**: the GOAWAY h2 queues for a client that breaks the protocol is sent before
  the connection closes (grpclib closes it without sending it).
- **The drain**: :meth:`PolicedProtocol.go_away` sends GOAWAY (NO_ERROR) with the last stream the
  connection has accepted. The frame is written here, beside h2's state machine: h2's own
  ``close_connection`` would close the connection for the answers still due. The RPCs already
  accepted go on; a stream opened after it is refused (RST_STREAM REFUSED_STREAM: never
  processed, the client may send it again elsewhere).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from grpclib.protocol import EventsProcessor, H2Protocol
from h2.errors import ErrorCodes
from h2.events import PingReceived, RequestReceived
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from online_inference.app.settings import Settings

TOO_MANY_PINGS = b"too_many_pings"


@dataclass(frozen=True)
class ConnectionLimits:
    max_streams: int
    min_ping_interval: float
    max_ping_strikes: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(settings.GRPC_MAX_CONCURRENT_STREAMS, settings.GRPC_MIN_PING_INTERVAL_SECONDS,
                   settings.GRPC_MAX_PING_STRIKES)


class PolicedEvents(EventsProcessor):
    """grpclib's events of one connection, with its pings counted and its streams refused once it
    has been told to go away."""

    def __init__(self, handler: Any, connection: Any, protocol: PolicedProtocol) -> None:
        super().__init__(handler, connection)
        self.protocol = protocol
        self.last_ping: float | None = None
        self.sent_at_last_ping = (-1, -1)  # what had been sent at the last PING: (DATA bytes, streams)
        self.strikes = 0

    def process_request_received(self, event: RequestReceived) -> None:
        if self.protocol.gone_away:
            return self.protocol.refuse_stream(event.stream_id)
        super().process_request_received(event)

    def close(self, reason: str = "Connection closed") -> None:
        """grpclib's close, after what h2 still has to send: the GOAWAY it queues for a client that
        broke the protocol (too many streams, a header block too large), which grpclib drops."""
        if not self.connection.is_closing():
            self.connection.flush()
        super().close(reason)

    def process_ping_received(self, event: PingReceived) -> None:
        super().process_ping_received(event)
        limits, now = self.protocol.limits, time.monotonic()
        sent = (self.connection.data_sent, self.connection.streams_started)
        if self.last_ping is not None and now - self.last_ping < limits.min_ping_interval and sent == self.sent_at_last_ping:
            self.strikes += 1
            if self.strikes > limits.max_ping_strikes:
                return self.protocol.go_away(ErrorCodes.ENHANCE_YOUR_CALM, TOO_MANY_PINGS, close=True)
        else:
            self.strikes = 0
        self.last_ping, self.sent_at_last_ping = now, sent


class PolicedProtocol(H2Protocol):
    def __init__(self, handler: Any, config: Any, h2_config: Any, *, limits: ConnectionLimits,
                 connections: set[PolicedProtocol]) -> None:
        super().__init__(handler, config, h2_config)
        self.limits = limits
        self.connections = connections  # the server's open connections (this one, while open)
        self.gone_away = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.processor = PolicedEvents(self.handler, self.connection, self)
        self.connection._connection.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: self.limits.max_streams})
        self.connection.flush()
        self.connections.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.connections.discard(self)
        super().connection_lost(exc)

    def go_away(self, error_code: ErrorCodes = ErrorCodes.NO_ERROR, debug: bytes = b"", close: bool = False) -> None:
        """GOAWAY with the last stream accepted (see the module); ``close``: and end the connection now."""
        if self.gone_away or self.connection.is_closing():
            return
        self.gone_away = True
        last = self.connection._connection.highest_inbound_stream_id
        frame = GoAwayFrame(stream_id=0, last_stream_id=last, error_code=error_code, additional_data=debug)
        self.connection.flush()  # whatever h2 has pending goes first
        self.connection._transport.write(frame.serialize())
        if close:
            self.processor.close("GOAWAY sent: " + (debug.decode() or error_code.name))

    def refuse_stream(self, stream_id: int) -> None:
        self.connection._connection.reset_stream(stream_id, error_code=ErrorCodes.REFUSED_STREAM)
        self.connection.flush()

    def close(self) -> None:
        """End the connection now (what it still runs is cancelled)."""
        if not self.connection.is_closing():
            self.processor.close("server stopped")
