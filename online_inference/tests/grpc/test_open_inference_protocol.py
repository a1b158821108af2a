"""Spec: the service answers the Open Inference Protocol over gRPC (``inference.GRPCInferenceService``)
on ``GRPC_PORT``, in the same process as REST, to ``tritonclient.grpc`` with its defaults, sync and
asyncio: liveness, readiness (of the server, and of the model by name, with or without its
version), server and model metadata, and inference, whose answers are bit-identical to REST's V2
binary answers for the same rows (1 and 1,000 rows), with the input as raw contents (what
tritonclient sends) or as typed FP32 contents, all outputs or those asked for; the contributions,
when asked, are REST V2's and ``/explain``'s bits. ``grpc.health.v1``
answers SERVING for the server and the service (grpcio's health stub, Check and Watch), NOT_FOUND
for another service; server reflection lists the services (grpcio's reflection client, run in a
process of its own: its descriptors and grpclib's are the same files)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
import tritonclient.http as triton_http
from grpc_health.v1 import health_pb2, health_pb2_grpc

from online_inference.app.protocols.v2.proto import grpc_predict_v2_pb2 as pb
from online_inference.tests.grpc.service import CARD, INFER, MODEL, Running, grpc_service, infer_request, rows

OUTPUTS = ["label", "probabilities"]


@pytest.fixture(scope="module")
def service() -> Iterator[Running]:
    with grpc_service() as running:
        yield running


def rest_binary(url: str, X: np.ndarray, outputs: list[str] = OUTPUTS) -> dict[str, bytes]:
    """REST V2 binary's answer for ``X``: each output's bytes."""
    client = triton_http.InferenceServerClient(url.removeprefix("http://"))
    tensor = triton_http.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=True)
    result = client.infer(MODEL, [tensor], outputs=[triton_http.InferRequestedOutput(o, binary_data=True) for o in outputs])
    return {o: result.as_numpy(o).tobytes() for o in outputs}


def triton_input(X: np.ndarray) -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    return tensor


def test_tritonclient_sees_a_live_ready_server_and_its_model(service: Running) -> None:
    client = triton_grpc.InferenceServerClient(service.target)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, CARD.version)
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "heart-online-inference" and server["extensions"] == ["binary_tensor_data", "model_repository"]
    model = client.get_model_metadata(MODEL, as_json=True)
    assert model == client.get_model_metadata(MODEL, CARD.version, as_json=True)
    assert model["name"] == MODEL and model["versions"] == [CARD.version] and model["platform"] == "onnxruntime_onnx"
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", str(len(CARD.features))]}]
    assert [o["name"] for o in model["outputs"]] == [*OUTPUTS, "contributions"]  # the last only when asked


@pytest.mark.parametrize("n", [1, 1000])
def test_sync_answers_are_rest_binary_answers_bit_for_bit(service: Running, n: int) -> None:
    X = rows(n)
    client = triton_grpc.InferenceServerClient(service.target)
    result = client.infer(MODEL, [triton_input(X)], request_id="r1")
    assert result.get_response().id == "r1" and result.get_response().model_version == CARD.version
    assert {o: result.as_numpy(o).tobytes() for o in OUTPUTS} == rest_binary(service.url, X)
    versioned = client.infer(MODEL, [triton_input(X)], model_version=CARD.version)
    assert {o: versioned.as_numpy(o).tobytes() for o in OUTPUTS} == rest_binary(service.url, X)


def test_asyncio_answers_are_rest_binary_answers_bit_for_bit(service: Running) -> None:
    X = rows(1000)

    async def infer_concurrently() -> list[dict[str, bytes]]:
        async with triton_aio.InferenceServerClient(service.target) as client:
            assert await client.is_server_ready()
            results = await asyncio.gather(*(client.infer(MODEL, [triton_input(X)]) for _ in range(8)))
            return [{o: r.as_numpy(o).tobytes() for o in OUTPUTS} for r in results]

    expected = rest_binary(service.url, X)
    assert all(answer == expected for answer in asyncio.run(infer_concurrently()))


def test_outputs_asked_for_come_in_the_order_asked(service: Running) -> None:
    X = rows(3)
    client = triton_grpc.InferenceServerClient(service.target)
    result = client.infer(MODEL, [triton_input(X)], outputs=[triton_grpc.InferRequestedOutput("probabilities")])
    assert [o.name for o in result.get_response().outputs] == ["probabilities"]
    assert result.as_numpy("probabilities").tobytes() == rest_binary(service.url, X, ["probabilities"])["probabilities"]


@pytest.mark.parametrize("n", [1, 300])
def test_contributions_when_asked_are_rest_v2s_and_explains_bit_for_bit(service: Running, n: int) -> None:
    X = rows(n)
    client = triton_grpc.InferenceServerClient(service.target)
    asked = [triton_grpc.InferRequestedOutput(o) for o in (*OUTPUTS, "contributions")]
    result = client.infer(MODEL, [triton_input(X)], outputs=asked)
    grpc_answer = {o: result.as_numpy(o).tobytes() for o in (*OUTPUTS, "contributions")}
    assert grpc_answer == rest_binary(service.url, X, [*OUTPUTS, "contributions"])
    explained = httpx.post(service.url + "/explain", json={"features": CARD.feature_names, "data": X.tolist()}).json()
    by_explain = np.array([list(row["contributions"].values()) for row in explained["predictions"]], dtype=np.float32)
    assert grpc_answer["contributions"] == by_explain.tobytes()
    assert {o: grpc_answer[o] for o in OUTPUTS} == rest_binary(service.url, X)  # asking changes no other output


def test_typed_contents_answer_as_raw_contents_do(service: Running) -> None:
    X = rows(20)
    with grpc.insecure_channel(service.target) as channel:
        infer = channel.unary_unary(INFER, request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelInferResponse.FromString)
        typed, raw = infer(infer_request(X, typed=True)), infer(infer_request(X))
    assert typed == raw and list(typed.raw_output_contents) == list(rest_binary(service.url, X).values())


def test_health_follows_readiness_check_and_watch(service: Running) -> None:
    with grpc.insecure_channel(service.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "inference.GRPCInferenceService"):
            assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="nope"))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


REFLECTION_CLIENT = """
import json, sys, grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
database = ProtoReflectionDescriptorDatabase(grpc.insecure_channel(sys.argv[1]))
services = database.get_services()
infer = database.FindFileContainingSymbol("inference.GRPCInferenceService")
methods = [m.name for s in infer.service if s.name == "GRPCInferenceService" for m in s.method]
print(json.dumps({"services": sorted(services), "methods": methods}))
"""


def test_reflection_lists_and_describes_the_services(service: Running) -> None:
    found = subprocess.run([sys.executable, "-c", REFLECTION_CLIENT, service.target], capture_output=True, text=True,
                           timeout=60, check=True)
    described = json.loads(found.stdout)
    assert described["services"] == ["grpc.health.v1.Health", "inference.GRPCInferenceService"]
    assert described["methods"] == ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
                                   "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"]
