"""Spec (#34): Triton's model repository API through tritonclient, over HTTP and over gRPC, against
the real process (``MODEL_URI`` a file the test changes). ``get_model_repository_index`` lists the
model READY with its version; ``unload_model`` makes it not ready, and every probe says so
(``/health`` 503 ``unloaded``, V2 ready, gRPC ServerReady, ModelReady and ``grpc.health.v1``
NOT_SERVING) while inference answers 503 / UNAVAILABLE and the index says UNAVAILABLE with why;
``load_model`` brings it back. The errors are the protocol's: an unknown model 404 / NOT_FOUND, a
config in the load 400 / INVALID_ARGUMENT, and a load of an artifact that is not a model 400 /
INVALID_ARGUMENT with why, the model still served. The repository messages are Triton's
(``tritonclient.grpc``'s descriptors, field for field)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from online_inference.app.protocols.v2.proto import grpc_predict_v2_pb2 as pb
from online_inference.app.settings import BUNDLED_MODEL
from online_inference.tests.grpc.service import CARD, MODEL, Running, grpc_service, rows
from online_inference.tests.stores import GARBAGE

MESSAGES = ("RepositoryIndexRequest", "RepositoryIndexResponse", "RepositoryModelLoadRequest", "RepositoryModelLoadResponse",
            "RepositoryModelUnloadRequest", "RepositoryModelUnloadResponse", "ModelRepositoryParameter")
PROTOCOLS = ("http", "grpc")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "heart.onnx"
    shutil.copy(BUNDLED_MODEL, path)
    return path


@pytest.fixture(scope="module")
def service(model_file: Path) -> Iterator[Running]:
    with grpc_service(env={"MODEL_URI": str(model_file)}) as running:
        yield running


def client(service: Running, protocol: str) -> Any:
    if protocol == "http":
        return triton_http.InferenceServerClient(service.url.removeprefix("http://"))
    return triton_grpc.InferenceServerClient(service.target)


def index(service: Running, protocol: str) -> list[dict[str, str]]:
    found = client(service, protocol).get_model_repository_index(**({"as_json": True} if protocol == "grpc" else {}))
    return found["models"] if protocol == "grpc" else found  # type: ignore[no-any-return]


def infer(service: Running, protocol: str) -> Any:
    module = triton_http if protocol == "http" else triton_grpc
    tensor = module.InferInput(CARD.input_name, [1, len(CARD.features)], "FP32")
    tensor.set_data_from_numpy(rows(1))
    return client(service, protocol).infer(MODEL, [tensor])


def grpc_health(service: Running) -> int:
    with grpc.insecure_channel(service.target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="")).status  # type: ignore[no-any-return]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unload_and_load_through_tritonclient(service: Running, protocol: str) -> None:
    triton = client(service, protocol)
    assert index(service, protocol) == [{"name": MODEL, "version": CARD.version, "state": "READY"}]
    expected = infer(service, protocol).as_numpy(CARD.probability_output)
    triton.unload_model(MODEL)
    assert not triton.is_model_ready(MODEL) and not triton.is_server_ready()
    health = httpx.get(service.url + "/health")
    assert health.status_code == 503 and health.json()["status"] == "unloaded"
    assert httpx.get(service.url + "/v2/health/ready").status_code == 503
    assert grpc_health(service) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(InferenceServerException) as refused:
        infer(service, protocol)
    assert refused.value.status() in ("503", "StatusCode.UNAVAILABLE"), refused.value
    (entry,) = index(service, protocol)
    assert (entry["name"], entry["version"], entry["state"]) == (MODEL, CARD.version, "UNAVAILABLE") and "repository API" in entry["reason"]
    triton.load_model(MODEL)
    assert triton.is_model_ready(MODEL) and triton.is_server_ready()
    assert grpc_health(service) == health_pb2.HealthCheckResponse.SERVING
    assert index(service, protocol) == [{"name": MODEL, "version": CARD.version, "state": "READY"}]
    assert np.array_equal(infer(service, protocol).as_numpy(CARD.probability_output), expected)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_errors_are_the_protocols(service: Running, model_file: Path, protocol: str) -> None:
    triton = client(service, protocol)
    codes = {"http": ("404", "400"), "grpc": ("StatusCode.NOT_FOUND", "StatusCode.INVALID_ARGUMENT")}[protocol]
    with pytest.raises(InferenceServerException) as unknown:
        triton.load_model("no-such-model")
    assert unknown.value.status() == codes[0] and "unknown model 'no-such-model'" in unknown.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        triton.unload_model("no-such-model")
    assert unknown.value.status() == codes[0]
    with pytest.raises(InferenceServerException) as configured:
        triton.load_model(MODEL, config='{"backend": "onnxruntime"}')
    assert configured.value.status() == codes[1] and "config" in configured.value.message()
    model_file.write_bytes(GARBAGE)
    try:
        with pytest.raises(InferenceServerException) as failed:
            triton.load_model(MODEL)
    finally:
        shutil.copy(BUNDLED_MODEL, model_file)
    message = failed.value.message()
    assert failed.value.status() == codes[1] and f"failed to load {MODEL!r}" in message and "not a loadable ONNX model" in message
    assert triton.is_model_ready(MODEL)
    body = httpx.get(service.url + "/health").json()
    assert body["status"] == "ready" and body["last_load"]["result"] == "failed", body
    assert infer(service, protocol).as_numpy(CARD.label_output).shape == (1,)
    triton.load_model(MODEL)
    assert httpx.get(service.url + "/health").json()["last_load"]["result"] == "ok"


def test_the_repository_messages_are_tritons() -> None:
    from tritonclient.grpc import service_pb2 as triton

    for name in MESSAGES:
        ours, theirs = descriptor_pb2.DescriptorProto(), descriptor_pb2.DescriptorProto()
        getattr(pb, name).DESCRIPTOR.CopyToProto(ours)
        getattr(triton, name).DESCRIPTOR.CopyToProto(theirs)
        assert ours == theirs, name
    methods = {m.name: (m.input_type.name, m.output_type.name) for m in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    assert methods["RepositoryModelLoad"] == ("RepositoryModelLoadRequest", "RepositoryModelLoadResponse")
