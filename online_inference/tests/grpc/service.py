"""What the gRPC tests share: the service as a process (``python -m online_inference.app``, the
port of each protocol chosen by the kernel), requests built from the service's stubs, and a raw
HTTP/2 connection (h2) for what no well-behaved client sends."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from h2.config import H2Configuration
from h2.connection import H2Connection
from hyperframe.frame import DataFrame, Frame, HeadersFrame
from h2.events import ConnectionTerminated, ResponseReceived, StreamEnded, StreamReset, TrailersReceived

from online_inference.app.protocols.v2.proto import grpc_predict_v2_pb2 as pb
from online_inference.bench.server import serve
from online_inference.tests.helpers import bundled_card, valid_row

CARD = bundled_card()
MODEL = CARD.name
INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class Running:
    url: str  # HTTP
    target: str  # gRPC, host:port
    process: Any


@contextmanager
def grpc_service(env: dict[str, str] | None = None, tracebacks: bool = False) -> Iterator[Running]:
    """The service as a process (bench.server.serve: stopped with SIGTERM at the end, a traceback
    in its log fails the test); yields its HTTP URL and its gRPC target."""
    with serve("onnx", env=env, tracebacks=tracebacks) as service:
        yield Running(service.url, f"127.0.0.1:{service.grpc_port}", service.process)


def rows(n: int) -> np.ndarray:
    """``n`` valid rows (the card's examples)."""
    base = np.array(valid_row(CARD), dtype=np.float32)
    return np.array([base] * n, dtype=np.float32)


def infer_request(X: np.ndarray | None = None, typed: bool = False, **fields: Any) -> pb.ModelInferRequest:
    """A ModelInferRequest of ``X`` (raw contents, or typed FP32 contents), ``fields`` set on it."""
    X = rows(1) if X is None else X
    request = pb.ModelInferRequest(**{"model_name": MODEL, **fields})
    tensor = request.inputs.add(name="input", datatype="FP32", shape=list(X.shape))
    if typed:
        tensor.contents.fp32_contents.extend(X.ravel().tolist())
    else:
        request.raw_input_contents.append(X.astype("<f4").tobytes())
    return request


def metric(url: str, name: str) -> float:
    """One sample of the service's /metrics (the first line that starts with ``name``)."""
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def model_calls(url: str) -> float:
    return metric(url, "inference_duration_seconds_count")


def framed(message: bytes, compressed: bool = False, length: int | None = None) -> bytes:
    """A gRPC message on the wire: the compressed flag, the length (``length``: a lie), the bytes."""
    return bytes([compressed]) + (len(message) if length is None else length).to_bytes(4, "big") + message


class RawConnection:
    """A client connection over h2, sending frames as told (it ignores the server's settings)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.h2 = H2Connection(H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.flush()
        self.events: list[Any] = []
        self.closed = False
        self.takes_data = True  # False: DATA is read but never acknowledged (the flow-control window stays shut)

    def flush(self) -> None:
        try:
            self.sock.sendall(self.h2.data_to_send())
        except (BrokenPipeError, ConnectionResetError):  # the server ended the connection: read_until says so
            self.closed = True

    def open(self, path: str = INFER, timeout: str | None = None) -> int:
        """A new stream with an RPC's headers (``timeout``: its grpc-timeout), nothing after them."""
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"),
                   ("content-type", "application/grpc"), ("te", "trailers")]
        if timeout is not None:
            headers.append(("grpc-timeout", timeout))
        self.h2.send_headers(stream_id, headers)
        self.flush()
        return stream_id

    def send(self, stream_id: int, data: bytes, end: bool = True) -> None:
        """``data`` in frames of the largest size the server takes (within its flow-control window)."""
        size = self.h2.max_outbound_frame_size
        for start in range(0, max(len(data), 1), size):
            last = start + size >= len(data)
            self.h2.send_data(stream_id, data[start:start + size], end_stream=end and last)
        self.flush()

    def reset(self, stream_id: int) -> None:
        self.h2.reset_stream(stream_id)
        self.flush()

    def ping(self, payload: bytes = b"12345678") -> None:
        self.h2.ping(payload)
        self.flush()

    def read_until(self, done: Any, timeout: float = 10) -> list[Any]:
        """Read and collect events until ``done(events)`` or the connection ends; every event so far."""
        deadline = time.monotonic() + timeout
        while not done(self.events) and not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                break
            events = self.h2.receive_data(data)
            self.events.extend(events)
            for event in events:
                if self.takes_data and hasattr(event, "flow_controlled_length") and event.stream_id:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self.flush()
        return self.events

    def status(self, stream_id: int) -> str | None:
        """The stream's grpc-status and grpc-message (``"4 ..."``), ``RST <code>`` if it was reset, or None yet."""
        for event in self.events:
            trailers = isinstance(event, TrailersReceived) or (  # (a trailers-only answer: its one HEADERS)
                isinstance(event, ResponseReceived) and any(k == b"grpc-status" for k, _ in event.headers))
            if trailers and event.stream_id == stream_id:
                headers = {k.decode(): v.decode() for k, v in event.headers}
                return f"{headers.get('grpc-status')} {headers.get('grpc-message', '')}".strip()
            if isinstance(event, StreamReset) and event.stream_id == stream_id:
                return f"RST {event.error_code.name}"
            if isinstance(event, StreamEnded) and event.stream_id == stream_id:
                return "ended without trailers"
        return None

    def send_past_goaway(self, stream_id: int, data: bytes) -> None:
        """DATA frames (the last ending the stream) written beside h2, whose state machine sends
        nothing once it has received a GOAWAY (python-hyper/h2#1181); a gRPC client still sends
        the streams the GOAWAY let through."""
        size = self.h2.max_outbound_frame_size
        for start in range(0, len(data), size):
            frame = DataFrame(stream_id, data[start:start + size])
            if start + size >= len(data):
                frame.flags.add("END_STREAM")
            self.sock.sendall(frame.serialize())

    def read_past_goaway(self, streams: list[int], timeout: float = 10) -> dict[int, tuple[bytes, str]]:
        """Each stream's answer read beside h2 (see :meth:`send_past_goaway`): its data and its
        grpc-status, once every stream has its trailers or the connection ends."""
        answers: dict[int, list[Any]] = {s: [b"", None] for s in streams}
        buffer, deadline = b"", time.monotonic() + timeout
        while any(a[1] is None for a in answers.values()) and time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            buffer += data
            while len(buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9:9 + length]))
                buffer = buffer[9 + length:]
                if isinstance(frame, DataFrame) and frame.stream_id in answers:
                    answers[frame.stream_id][0] += frame.data
                elif isinstance(frame, HeadersFrame) and frame.stream_id in answers:
                    headers = dict(self.h2.decoder.decode(frame.data))
                    if "grpc-status" in headers:
                        answers[frame.stream_id][1] = headers["grpc-status"]
        return {s: (a[0], a[1]) for s, a in answers.items()}

    def goaway(self) -> ConnectionTerminated | None:
        return next((e for e in self.events if isinstance(e, ConnectionTerminated)), None)

    def close(self) -> None:
        self.sock.close()
