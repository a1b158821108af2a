"""Spec: whatever a gRPC client sends, the service answers with the code that says what was wrong,
never INTERNAL or UNKNOWN, and keeps serving everyone else.

- Bytes that are no ModelInferRequest, a wrong shape or datatype, contents that do not add up
  (raw bytes ≠ the shape's, a count of values ≠ the shape's, raw and typed at once), values out of
  the card's rules, an unknown output: INVALID_ARGUMENT, with REST's ``error`` as its message.
- Too many rows, a message over ``MAX_BODY_BYTES`` (over 64 KiB, for an RPC that is not work:
  health's, reflection's): RESOURCE_EXHAUSTED (the message unread).
- An unknown model or version: NOT_FOUND.
- A compressed message: UNIMPLEMENTED; a message shorter than its prefix says: INVALID_ARGUMENT.
- A message that does not come within ``TIMEOUT_BODY`` (streams opened and never sent, as many as
  a connection may open): DEADLINE_EXCEEDED for each, while another connection is served; a client
  that opens more streams than ``GRPC_MAX_CONCURRENT_STREAMS`` loses its connection (GOAWAY
  PROTOCOL_ERROR).
- An answer the client never takes (its flow-control window stays shut): its stream is reset
  ``TIMEOUT_BODY`` after, and it holds nothing.
- A PING flood: GOAWAY ENHANCE_YOUR_CALM ``too_many_pings``.
- A deadline that has passed: DEADLINE_EXCEEDED, and the model is not run.
- The memory budget: a message that does not fit beside those in flight is refused UNAVAILABLE,
  with ``retry-after`` (seconds, as REST's), before it is read; an RPC cancelled, or whose connection is
  lost, mid-message holds nothing afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.http as triton_http
from h2.errors import ErrorCodes
from h2.events import PingAckReceived, SettingsAcknowledged
from h2.settings import SettingCodes
from tritonclient.utils import InferenceServerException

from online_inference.app.protocols.v2.proto import grpc_predict_v2_pb2 as pb
from online_inference.tests.grpc.service import (CARD, INFER, MODEL, RawConnection, Running, framed, grpc_service,
                                                 infer_request, model_calls, rows)
from online_inference.tests.helpers import held_bytes, wait_until

STREAMS = 16
ENV = {"TIMEOUT_BODY": "1", "GRPC_MAX_CONCURRENT_STREAMS": str(STREAMS), "MEMORY_BUDGET_BYTES": str(64 * 1024 * 1024)}
FEATURES = len(CARD.features)


@pytest.fixture(scope="module")
def service() -> Iterator[Running]:
    with grpc_service(env=ENV) as running:
        yield running


def call(service: Running, message: bytes, path: str = INFER) -> tuple[grpc.StatusCode, str]:
    """One RPC of ``message``'s bytes (no client-side protobuf): its code and details."""
    with grpc.insecure_channel(service.target) as channel:
        try:
            channel.unary_unary(path)(message, timeout=30)
        except grpc.RpcError as error:
            return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def rest_error(service: Running, X: np.ndarray, datatype: str = "FP32") -> str:
    """REST V2 binary's ``error`` for the same tensor."""
    client = triton_http.InferenceServerClient(service.url.removeprefix("http://"))
    tensor = triton_http.InferInput("input", list(X.shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=True)
    with pytest.raises(InferenceServerException) as error:
        client.infer(MODEL, [tensor])
    return error.value.message()


def out_of_range() -> np.ndarray:
    X = rows(2)
    X[1, 0] = 1e9  # far outside any feature's range
    return X


@pytest.mark.parametrize("X", [rows(3)[:, :-1].copy(), rows(1).reshape(1, 1, FEATURES), out_of_range()],
                         ids=["width", "three-dimensions", "out-of-range"])
def test_bad_tensors_are_invalid_argument_with_rests_message(service: Running, X: np.ndarray) -> None:
    request = infer_request()
    request.inputs[0].shape[:] = list(X.shape)
    request.raw_input_contents[0] = X.astype("<f4").tobytes()
    assert call(service, request.SerializeToString()) == (grpc.StatusCode.INVALID_ARGUMENT, rest_error(service, X))


def test_a_wrong_datatype_is_invalid_argument_with_rests_message(service: Running) -> None:
    X = rows(2).astype(np.int64)
    request = infer_request()
    request.inputs[0].datatype, request.inputs[0].shape[:] = "INT64", [2, FEATURES]
    request.raw_input_contents[0] = X.tobytes()
    assert call(service, request.SerializeToString()) == (grpc.StatusCode.INVALID_ARGUMENT, rest_error(service, X, "INT64"))


def contents_that_do_not_add_up() -> list[pb.ModelInferRequest]:
    short_raw = infer_request(rows(2))
    short_raw.raw_input_contents[0] = short_raw.raw_input_contents[0][:-4]
    short_typed = infer_request(rows(2), typed=True)
    del short_typed.inputs[0].contents.fp32_contents[-1]
    both = infer_request(rows(1), typed=True)
    both.raw_input_contents.append(rows(1).tobytes())
    two_raw = infer_request(rows(1))
    two_raw.raw_input_contents.append(rows(1).tobytes())
    wrong_field = infer_request(rows(1), typed=True)
    wrong_field.inputs[0].contents.int64_contents.append(1)
    no_input = pb.ModelInferRequest(model_name=MODEL)
    unknown_output = infer_request()
    unknown_output.outputs.add(name="nope")
    unknown_input = infer_request()
    unknown_input.inputs[0].name = "nope"
    return [short_raw, short_typed, both, two_raw, wrong_field, no_input, unknown_output, unknown_input]


@pytest.mark.parametrize("request_", contents_that_do_not_add_up(),
                         ids=["raw-short", "typed-short", "raw-and-typed", "two-raw", "wrong-field", "no-input",
                              "unknown-output", "unknown-input"])
def test_contents_that_do_not_add_up_are_invalid_argument(service: Running, request_: pb.ModelInferRequest) -> None:
    code, details = call(service, request_.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details


@pytest.mark.parametrize("message", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x12\x03abc\x1a"], ids=["junk", "truncated", "cut"])
def test_malformed_bytes_are_invalid_argument(service: Running, message: bytes) -> None:
    code, details = call(service, message)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "inference.ModelInferRequest" in details


def test_too_many_rows_and_a_message_over_the_limit_are_resource_exhausted(service: Running) -> None:
    too_many = infer_request(np.zeros((10_001, FEATURES), np.float32))
    code, details = call(service, too_many.SerializeToString())
    assert (code, details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "at most 10000 rows per request, got 10001")
    code, details = call(service, b"\x00" * (8 * 1024 * 1024 + 1))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "MAX_BODY_BYTES" in details
    assert call(service, infer_request().SerializeToString())[0] == grpc.StatusCode.OK


@pytest.mark.parametrize("path", ["/grpc.health.v1.Health/Watch", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"])
def test_a_streaming_rpcs_message_over_its_limit_is_resource_exhausted(service: Running, path: str) -> None:
    with grpc.insecure_channel(service.target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            list(channel.stream_stream(path)(iter([b"\x0a" * (64 * 1024 + 1)]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_an_unknown_model_or_version_is_not_found(service: Running) -> None:
    assert call(service, infer_request(model_name="nope").SerializeToString())[0] == grpc.StatusCode.NOT_FOUND
    assert call(service, infer_request(model_version="9").SerializeToString())[0] == grpc.StatusCode.NOT_FOUND
    ready = pb.ModelReadyRequest(name=MODEL, version="9").SerializeToString()
    assert call(service, ready, "/inference.GRPCInferenceService/ModelReady")[0] == grpc.StatusCode.NOT_FOUND
    metadata = pb.ModelMetadataRequest(name="nope").SerializeToString()
    assert call(service, metadata, "/inference.GRPCInferenceService/ModelMetadata")[0] == grpc.StatusCode.NOT_FOUND


def test_a_compressed_or_short_message_gets_its_code(service: Running) -> None:
    connection = RawConnection(service.target)
    message = infer_request().SerializeToString()
    compressed, short, empty, cut_prefix = (connection.open() for _ in range(4))
    connection.send(compressed, framed(message, compressed=True))
    connection.send(short, framed(message[:10], length=len(message)))
    connection.send(empty, framed(b"", length=len(message)))  # a prefix, then the end: no body at all
    connection.send(cut_prefix, framed(message)[:3])
    streams = (compressed, short, empty, cut_prefix)
    connection.read_until(lambda _: all(connection.status(s) for s in streams))
    assert connection.status(compressed).startswith("12 ")  # UNIMPLEMENTED
    assert [connection.status(s)[:2] for s in streams[1:]] == ["3 "] * 3  # INVALID_ARGUMENT
    connection.close()


def test_streams_that_never_send_their_message_time_out_and_hold_nothing(service: Running) -> None:
    idle = RawConnection(service.target)
    idle.read_until(lambda events: events)  # the server's SETTINGS: its stream limit
    streams = [idle.open() for _ in range(STREAMS - 1)]
    half = idle.open()
    idle.send(half, framed(b"\x0a" * 100, length=100_000)[:50], end=False)  # a message begun, never ended
    assert call(service, infer_request().SerializeToString())[0] == grpc.StatusCode.OK  # others are served meanwhile
    idle.read_until(lambda _: all(idle.status(s) for s in [*streams, half]), timeout=10)
    assert {idle.status(s).split(" ")[0] for s in [*streams, half]} == {"4"}  # DEADLINE_EXCEEDED, each
    wait_until(lambda: held_bytes(service.url) == 0, 5)
    idle.close()


def test_an_answer_never_taken_resets_its_stream_and_holds_nothing(service: Running) -> None:
    reader = RawConnection(service.target)
    reader.takes_data = False
    reader.h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 10})  # it takes 10 bytes of an answer, then none
    reader.flush()
    reader.read_until(lambda events: any(isinstance(e, SettingsAcknowledged) for e in events))
    stream = reader.open()
    reader.send(stream, framed(infer_request(rows(1000)).SerializeToString()))
    wait_until(lambda: held_bytes(service.url) > 0, 5)
    reader.read_until(lambda _: reader.status(stream) is not None, timeout=5)
    assert reader.status(stream) == "RST NO_ERROR"  # TIMEOUT_BODY (1 s) after it stopped taking the answer
    wait_until(lambda: held_bytes(service.url) == 0, 5)
    reader.close()


def test_more_streams_than_allowed_cost_the_connection_not_the_service(service: Running) -> None:
    greedy = RawConnection(service.target)
    greedy.read_until(lambda events: events)
    greedy.h2.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 1000  # it ignores the server's limit
    greedy.h2.remote_settings.acknowledge()
    for _ in range(STREAMS + 1):
        greedy.open()
    greedy.read_until(lambda _: False, timeout=3)
    assert greedy.closed and greedy.goaway() is not None and greedy.goaway().error_code == ErrorCodes.PROTOCOL_ERROR
    assert call(service, infer_request().SerializeToString())[0] == grpc.StatusCode.OK


def test_a_ping_flood_is_told_to_calm_down(service: Running) -> None:
    flooder = RawConnection(service.target)
    for i in range(10):  # one at a time, each once the last is answered (a close then resets nothing unread)
        flooder.ping(i.to_bytes(8, "big"))
        flooder.read_until(lambda events: flooder.goaway() is not None or sum(isinstance(e, PingAckReceived) for e in events) > i)
        flooder.read_until(lambda _: flooder.goaway() is not None, timeout=0.2)  # a GOAWAY right behind the answer
        if flooder.goaway() is not None:
            break
    goaway = flooder.goaway()
    assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert goaway.additional_data == b"too_many_pings"


def test_a_passed_deadline_is_not_run(service: Running) -> None:
    before = model_calls(service.url)
    connection = RawConnection(service.target)
    late = [connection.open(timeout="1u") for _ in range(10)]
    for stream in late:
        connection.send(stream, framed(infer_request().SerializeToString()))
    connection.read_until(lambda _: all(connection.status(s) for s in late))
    assert {connection.status(s).split(" ")[0] for s in late} == {"4"}  # DEADLINE_EXCEEDED
    assert model_calls(service.url) == before
    connection.close()


def test_a_message_beyond_the_memory_budget_is_unavailable_unread_and_cancels_give_it_back(service: Running) -> None:
    holder, second = RawConnection(service.target), RawConnection(service.target)
    large = 4 * 1024 * 1024  # three times this (the body's copies) fits the budget once, not twice
    first = holder.open()
    holder.send(first, framed(b"", length=large) + b"\x0a" * 1000, end=False)
    wait_until(lambda: held_bytes(service.url) > 3 * large, 5)
    refused = second.open()
    second.send(refused, framed(b"", length=large) + b"\x0a" * 1000, end=False)
    second.read_until(lambda _: second.status(refused))
    assert second.status(refused).startswith("14 ")  # UNAVAILABLE
    trailers = [e for e in second.events if getattr(e, "stream_id", None) == refused and hasattr(e, "headers")][-1]
    assert (b"retry-after", b"1") in trailers.headers
    holder.reset(first)  # the client cancels: its charge is given back
    wait_until(lambda: held_bytes(service.url) == 0, 5)
    again = holder.open()
    holder.send(again, framed(b"", length=large) + b"\x0a" * 1000, end=False)
    wait_until(lambda: held_bytes(service.url) > 3 * large, 5)
    holder.close()  # the connection is lost: so is its charge
    wait_until(lambda: held_bytes(service.url) == 0, 5)
    second.close()
