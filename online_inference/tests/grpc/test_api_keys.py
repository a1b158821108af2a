"""Spec: with ``API_KEYS_FILE``, gRPC's RPCs take the key REST takes, ``Bearer <key>`` in the
``authorization`` metadata, against the real process: ModelInfer needs a key of the inference
group and the metadata RPCs one of the metadata group; no key or a wrong one is UNAUTHENTICATED, a
known key of another group PERMISSION_DENIED, each with REST's error message, decided before the
message is read; the probes (ServerLive, ServerReady, ModelReady, grpc.health.v1's Check and
Watch) need none, server reflection any known key. /metrics counts the refusals by reason under
``protocol="grpc"``; with ACCESS_LOG the log names each authenticated RPC's key, never the key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as triton_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from online_inference.tests.grpc.service import INFER, MODEL, RawConnection, framed, rows
from online_inference.tests.reliability.test_api_keys import KEYS, KeyedService, bearer, keyed_service, keys_text, metric_value_with

REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
LIST_SERVICES = b"\x3a\x00"  # ServerReflectionRequest{list_services: ""} (field 7, an empty string)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedService]:
    with keyed_service(tmp_path_factory.mktemp("grpc-keys"), keys_text(KEYS), ACCESS_LOG="true") as running:
        yield running


def target(service: KeyedService) -> str:
    return f"127.0.0.1:{service.service.grpc_port}"


def infer(service: KeyedService, headers: dict[str, str] | None = None) -> triton_grpc.InferResult:
    X = rows(2)
    tensor = triton_grpc.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    return triton_grpc.InferenceServerClient(target(service)).infer(MODEL, [tensor], headers=headers)


def refusal(call: object) -> tuple[str, str]:
    """The status and message of a call tritonclient's client refused."""
    with pytest.raises(InferenceServerException) as refused:
        call()  # type: ignore[operator]
    return str(refused.value.status()), str(refused.value.message())


def test_model_infer_needs_an_inference_key(service: KeyedService) -> None:
    assert refusal(lambda: infer(service)) == ("StatusCode.UNAUTHENTICATED", "an API key is needed: 'Authorization: Bearer <key>'")
    assert refusal(lambda: infer(service, bearer("wrong"))) == ("StatusCode.UNAUTHENTICATED", "unknown API key")
    assert refusal(lambda: infer(service, bearer(KEYS["metrics"]))) == (
        "StatusCode.PERMISSION_DENIED", "the API key 'prometheus' may not call inference endpoints")
    assert refusal(lambda: infer(service, {"authorization": f"Basic {KEYS['inference']}"}))[0] == "StatusCode.UNAUTHENTICATED"
    assert infer(service, bearer(KEYS["inference"])).as_numpy("label").shape == (2,)
    assert infer(service, {"authorization": f"bearer {KEYS['inference']}"}).as_numpy("label").shape == (2,)


def test_the_metadata_rpcs_need_a_metadata_key(service: KeyedService) -> None:
    client = triton_grpc.InferenceServerClient(target(service))
    for call in (client.get_server_metadata, lambda **kw: client.get_model_metadata(MODEL, **kw)):
        assert refusal(lambda: call())[0] == "StatusCode.UNAUTHENTICATED"
        assert refusal(lambda: call(headers=bearer(KEYS["inference"])))[0] == "StatusCode.PERMISSION_DENIED"
        assert call(headers=bearer(KEYS["metadata"]))


def test_the_probes_need_no_key(service: KeyedService) -> None:
    client = triton_grpc.InferenceServerClient(target(service))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    with grpc.insecure_channel(target(service)) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


def test_reflection_needs_a_known_key(service: KeyedService) -> None:
    with grpc.insecure_channel(target(service)) as channel:
        reflect = channel.stream_stream(REFLECTION)
        with pytest.raises(grpc.RpcError) as refused:
            list(reflect(iter([LIST_SERVICES]), timeout=10))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        (answer,) = reflect(iter([LIST_SERVICES]), timeout=10, metadata=[("authorization", f"Bearer {KEYS['metrics']}")])
    assert b"inference.GRPCInferenceService" in answer


def test_two_authorization_values_are_no_key(service: KeyedService) -> None:
    with grpc.insecure_channel(target(service)) as channel:
        ready = channel.unary_unary("/inference.GRPCInferenceService/ServerMetadata")
        with pytest.raises(grpc.RpcError) as refused:
            ready(b"", timeout=10, metadata=[("authorization", f"Bearer {KEYS['metadata']}")] * 2)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and "one Authorization header" in refused.value.details()


def open_stream(connection: RawConnection, *metadata: tuple[str, str]) -> int:
    """An RPC's stream opened with ``metadata`` after the headers, nothing sent after them."""
    stream_id = connection.h2.get_next_available_stream_id()
    connection.h2.send_headers(stream_id, [(":method", "POST"), (":scheme", "http"), (":path", INFER), (":authority", "test"),
                                           ("content-type", "application/grpc"), ("te", "trailers"), *metadata])
    connection.flush()
    return stream_id


def test_the_key_is_checked_before_the_message_is_read(service: KeyedService) -> None:
    """A prefix announcing a message over MAX_BODY_BYTES, or no message at all: UNAUTHENTICATED at
    once (read first, they would be RESOURCE_EXHAUSTED, or wait TIMEOUT_BODY)."""
    connection = RawConnection(target(service))
    started = time.monotonic()
    huge, silent = open_stream(connection), open_stream(connection, ("authorization", "Bearer wrong"))
    connection.send(huge, framed(b"", length=100 * 1024 * 1024), end=False)
    connection.read_until(lambda _: connection.status(huge) and connection.status(silent))
    assert connection.status(huge) == "16 an API key is needed: 'Authorization: Bearer <key>'"
    assert connection.status(silent) == "16 unknown API key" and time.monotonic() - started < 2
    connection.close()


def test_metrics_count_grpcs_refusals_by_reason(service: KeyedService) -> None:
    def count(reason: str) -> float:
        return metric_value_with(service, "api_key_refusals_total", reason=reason, protocol="grpc")

    before = {reason: count(reason) for reason in ("missing", "malformed", "unknown", "forbidden")}
    refusal(lambda: infer(service))
    refusal(lambda: infer(service, {"authorization": "Token x"}))
    refusal(lambda: infer(service, bearer("wrong")))
    refusal(lambda: infer(service, bearer(KEYS["metadata"])))
    refusal(lambda: infer(service, bearer(KEYS["metadata"])))
    assert {reason: count(reason) - before[reason] for reason in before} == {"missing": 1, "malformed": 1, "unknown": 1, "forbidden": 2}
    handled = metric_value_with(service, "grpc_server_handled_total", grpc_service="inference.GRPCInferenceService",
                                grpc_method="ModelInfer", grpc_code="PERMISSION_DENIED")
    assert handled >= 2


def test_each_authenticated_rpc_is_logged_by_its_keys_name_and_no_key_ever(service: KeyedService) -> None:
    infer(service, bearer(KEYS["inference"]))
    log: Path = service.log
    expected = "online_inference.access: api key 'clinic': /inference.GRPCInferenceService/ModelInfer"
    deadline = time.monotonic() + 5
    while expected not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the service's log, until the deadline
    assert expected in log.read_text()
    assert [group for group, key in KEYS.items() if key in log.read_text()] == []
