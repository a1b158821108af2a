"""Spec: the gRPC transport's hooks into grpclib and h2 (app/grpc/: each override calls the
parent) still fit the releases pinned in requirements/runtime.in: the version installed is the one
pinned, and every name the hooks override or read exists with the shape they expect. (The hostile
and drain tests check what the hooks do, against the real process.)"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

import grpclib.protocol
import grpclib.server
import h2.connection

from online_inference.app.grpc.connection import PolicedEvents, PolicedProtocol
from online_inference.app.grpc.transport import DeadlineHandler, GrpcServer

RUNTIME_IN = Path(__file__).resolve().parents[3] / "requirements" / "runtime.in"


def test_grpclib_is_the_pinned_release() -> None:
    (pin,) = re.findall(r"^grpclib==([\w.]+)", RUNTIME_IN.read_text(), flags=re.MULTILINE)
    assert version("grpclib") == pin


def test_the_overridden_methods_exist_with_their_signatures() -> None:
    overridden = {
        PolicedEvents: grpclib.protocol.EventsProcessor, PolicedProtocol: grpclib.protocol.H2Protocol,
        DeadlineHandler: grpclib.server.Handler, GrpcServer: grpclib.server.Server,
    }
    for ours, theirs in overridden.items():
        for name in ("process_request_received", "process_ping_received", "connection_made", "connection_lost",
                     "accept", "_protocol_factory"):
            if name in vars(ours):
                assert name in vars(theirs), f"{theirs.__name__}.{name} is gone"
                assert list(inspect.signature(getattr(theirs, name)).parameters) == \
                    list(inspect.signature(getattr(ours, name)).parameters)


def test_events_are_dispatched_through_methods_an_override_replaces() -> None:
    source = inspect.getsource(grpclib.protocol.EventsProcessor.__init__)
    assert "RequestReceived: self.process_request_received" in source
    assert "PingReceived: self.process_ping_received" in source


def test_the_private_names_the_hooks_read_exist() -> None:
    protocol_made = inspect.getsource(grpclib.protocol.H2Protocol.connection_made)
    assert "self.processor = EventsProcessor(" in protocol_made and "self.connection = Connection(" in protocol_made
    connection = inspect.getsource(grpclib.protocol.Connection)
    for name in ("self._connection = connection", "self._transport = transport", "def flush", "def is_closing",
                 "data_sent = 0", "streams_started = 0"):
        assert name in connection
    factory = inspect.getsource(grpclib.server.Server._protocol_factory)
    assert "Handler(" in factory and "self._handlers.add(handler)" in factory
    server_init = inspect.getsource(grpclib.server.Server.__init__)
    for name in ("self._mapping = mapping", "self._codec = codec", "self._status_details_codec", "self.__dispatch__",
                 "self._h2_config", "self._config"):
        assert name in server_init
    handler = inspect.getsource(grpclib.server.request_handler)
    assert "Deadline.from_headers(headers)" in handler  # the header the DeadlineHandler takes away
    stream = inspect.getsource(grpclib.server.Stream)
    for name in ("self._stream = stream", "self._recv_type = recv_type", "_send_trailing_metadata_done"):
        assert name in stream
    assert "async def recv_data(self, size: int)" in inspect.getsource(grpclib.protocol.Stream)
    for name in ("highest_inbound_stream_id", "update_settings", "reset_stream"):
        assert hasattr(h2.connection.H2Connection, name) or name in inspect.getsource(h2.connection.H2Connection.__init__)
