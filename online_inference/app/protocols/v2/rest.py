"""The Open Inference Protocol (V2) over REST, with Triton's binary tensor data extension
(:mod:`.binary`): reads its JSON (and bytes) into tensors (:mod:`.tensors`), which the data plane
checks and answers, and writes the answer back. Every path takes the model's version too
(``/versions/{version}``). And Triton's model repository extension (``/v2/repository/...``):
the index, a load (in the background of the server: the data plane's repository) and an unload."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from online_inference.app.dataplane.plane import DataPlane, Served
from online_inference.app.dataplane.rules import may_hold_booleans
from online_inference.app.errors import InvalidInput
from online_inference.app.protocols.rest.deps import DataPlaneDep, read_json_body
from online_inference.app.protocols.rest.responses import ERROR_RESPONSES, ErrorResponse, json_response
from online_inference.app.protocols.v2 import binary, tensors
from online_inference.app.protocols.v2.types import (InferenceRequest, InferenceResponse, ModelMetadata, RepositoryIndexEntry,
                                                     RepositoryIndexRequest, RepositoryModelRequest, RequestInput,
                                                     parse_repository_request, parse_request)

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])

MODEL_RESPONSES = {**ERROR_RESPONSES,
                   404: {"model": ErrorResponse, "description": "No model of that name (or version) is served."}}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {503: {"description": "Not ready: the model is loading or failed."}}
LIVE = b'{"live":true}'
# Which API key group may call each endpoint (None: a probe, open to all): see dataplane/access.py.
ACCESS: dict[str, str | None] = {
    "/v2/health/live": None, "/v2/health/ready": None,
    "/v2/models/{name}/ready": None, "/v2/models/{name}/versions/{version}/ready": None,
    "/v2": "metadata", "/v2/": "metadata", "/v2/models/{name}": "metadata", "/v2/models/{name}/versions/{version}": "metadata",
    "/v2/models/{name}/infer": "inference", "/v2/models/{name}/versions/{version}/infer": "inference",
    "/v2/repository/index": "model-repository", "/v2/repository/models/{name}/load": "model-repository",
    "/v2/repository/models/{name}/unload": "model-repository",
}
REPOSITORY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Done: the model is served (load) or is not any more (unload). No body.", "content": None},
    400: {"model": ErrorResponse, "description": "Invalid parameters, or a load that failed (why: the old model still serves)."},
    404: {"model": ErrorResponse, "description": "No model of that name is served."},
    415: ERROR_RESPONSES[415],
}


def input_tensor(tensor: RequestInput, extra: memoryview, numbers_only: bool) -> tensors.InputTensor:
    """The request's one input, with its values from the JSON ``data`` (``numbers_only``: the JSON
    holds no ``true`` or ``false``) or from the bytes after the JSON (``extra``), which it must use up."""
    size = binary.binary_size(tensor.parameters)
    if size is None:
        binary.check_all_read(extra, 0)
        if tensor.data is None:
            raise InvalidInput(f"input {tensor.name!r} has neither data nor parameters.binary_data_size")
        return tensors.InputTensor(tensor.name, tensor.datatype, tensor.shape, data=tensor.data, numbers_only=numbers_only)
    if tensor.data is not None:
        raise InvalidInput(f"input {tensor.name!r} has both data and parameters.binary_data_size")
    raw = binary.take(extra, 0, size, tensor.name)
    binary.check_all_read(extra, size)
    return tensors.InputTensor(tensor.name, tensor.datatype, tensor.shape, raw=raw)


def requested_outputs(v2_request: InferenceRequest, served: Served) -> list[tuple[str, bool]]:
    """The outputs asked for (labels and probabilities by default), each with whether it is wanted as bytes."""
    if not v2_request.outputs:
        default = binary.wants_binary(None, v2_request.parameters)
        return [(name, default) for name in tensors.default_outputs(served)]
    tensors.check_outputs(served, [o.name for o in v2_request.outputs])
    return [(o.name, binary.wants_binary(o.parameters, v2_request.parameters)) for o in v2_request.outputs]


@router.get("/health/live", summary="Liveness: the process answers")
async def live() -> Response:
    return Response(LIVE, media_type="application/json")


@router.get("/health/ready", summary="Readiness: the model is loaded and checked", responses=READY_RESPONSES)
async def ready(plane: DataPlaneDep) -> Response:
    is_ready = plane.health()["status"] == "ready"
    return json_response({"ready": is_ready}, 200 if is_ready else 503)


@router.get("", summary="Server metadata")
@router.get("/", include_in_schema=False)
async def server_metadata() -> Response:
    return json_response(tensors.server_metadata())


@router.get("/models/{name}", summary="Model metadata", response_model=ModelMetadata, responses=MODEL_RESPONSES)
async def model_metadata(name: str, plane: DataPlaneDep) -> Response:
    return describe_model(plane.ready_named(name))


@router.get("/models/{name}/versions/{version}", summary="Model metadata, of a version",
            response_model=ModelMetadata, responses=MODEL_RESPONSES)
async def model_version_metadata(name: str, version: str, plane: DataPlaneDep) -> Response:
    return describe_model(plane.ready_named(name, version))


def describe_model(served: Served) -> Response:
    return json_response(tensors.model_metadata(served))


@router.get("/models/{name}/ready", summary="Model readiness", responses=MODEL_RESPONSES)
async def model_ready(name: str, plane: DataPlaneDep) -> Response:
    return json_response({"name": plane.ready_named(name).card.name, "ready": True})


@router.get("/models/{name}/versions/{version}/ready", summary="Model readiness, of a version", responses=MODEL_RESPONSES)
async def model_version_ready(name: str, version: str, plane: DataPlaneDep) -> Response:
    return json_response({"name": plane.ready_named(name, version).card.name, "ready": True})


INFER_DOCS: dict[str, Any] = {
    "response_model": InferenceResponse,
    "responses": MODEL_RESPONSES,
    "openapi_extra": {
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}},
        "parameters": [{
            "name": "Inference-Header-Content-Length", "in": "header", "required": False,
            "schema": {"type": "integer", "minimum": 0},
            "description": "Binary tensor data: the length of the JSON, which the inputs' bytes follow.",
        }],
    },
}


@router.post("/models/{name}/infer", summary="Inference: FP32 [N, features] in, labels and probabilities out", **INFER_DOCS)
async def infer(name: str, request: Request, plane: DataPlaneDep) -> Response:
    return await answer_inference(plane.ready_named(name), request, plane)


@router.post("/models/{name}/versions/{version}/infer", summary="Inference, of a version", **INFER_DOCS)
async def infer_version(name: str, version: str, request: Request, plane: DataPlaneDep) -> Response:
    return await answer_inference(plane.ready_named(name, version), request, plane)


async def answer_inference(served: Served, request: Request, plane: DataPlane) -> Response:
    header_length = request.headers.get(binary.HEADER_LENGTH)
    body = await read_json_body(request, binary=header_length is not None)

    def decode() -> Any:
        header, extra = binary.split_body(body, header_length)
        served.rules.check_value_count(header)
        v2_request = parse_request(header)
        if len(v2_request.inputs) != 1:
            raise InvalidInput(f"expected exactly one input {served.session.input.name!r}, got {len(v2_request.inputs)}")
        wanted = requested_outputs(v2_request, served)
        given = v2_request.inputs[0]
        tensors.check_input(served, given.name, given.datatype, given.shape)
        rows = tensors.decode_input(input_tensor(given, extra, numbers_only=not may_hold_booleans(header)), served)
        return served.matrix(rows), v2_request.id, wanted  # nothing parsed outlives the decoding

    X, request_id, wanted = plane.decode("v2", decode)
    prediction = await plane.predict(served, X, tensors.contributions_asked(served, [name for name, _ in wanted]))
    outputs, blob = binary.encode_outputs(tensors.output_tensors(served, prediction, [name for name, _ in wanted]),
                                          [as_bytes for _, as_bytes in wanted])
    answer: dict[str, Any] = {"model_name": served.card.name, "model_version": served.card.version, "outputs": outputs}
    if request_id is not None:
        answer["id"] = request_id
    if not blob:
        return json_response(answer)
    header = orjson.dumps(answer)
    return Response(header + blob, media_type=binary.BINARY_MEDIA_TYPE,
                    headers={"Inference-Header-Content-Length": str(len(header))})


@router.post("/repository/index", summary="Model repository: the model, its version and state", tags=["Model repository"],
             response_model=list[RepositoryIndexEntry], responses={400: ERROR_RESPONSES[400], 415: ERROR_RESPONSES[415]},
             openapi_extra={"requestBody": {"required": False, "content": {"application/json": {
                 "schema": RepositoryIndexRequest.model_json_schema()}}}})
async def repository_index(request: Request, plane: DataPlaneDep) -> Response:
    body = parse_repository_request(await read_json_body(request), RepositoryIndexRequest)
    return json_response(plane.repository.index(body.ready))


REPOSITORY_DOCS: dict[str, Any] = {
    "tags": ["Model repository"], "response_class": Response, "responses": REPOSITORY_RESPONSES,
    "openapi_extra": {"requestBody": {"required": False, "content": {"application/json": {
        "schema": RepositoryModelRequest.model_json_schema()}}}},
}


@router.post("/repository/models/{name}/load", summary="Model repository: load the model again (fetched and checked), "
             "then serve it", **REPOSITORY_DOCS)
async def repository_load(name: str, request: Request, plane: DataPlaneDep) -> Response:
    body = parse_repository_request(await read_json_body(request), RepositoryModelRequest)
    await plane.repository.load(name, body.parameters or {})
    return Response(status_code=200)


@router.post("/repository/models/{name}/unload", summary="Model repository: serve the model no more (not ready) until a load",
             **REPOSITORY_DOCS)
async def repository_unload(name: str, request: Request, plane: DataPlaneDep) -> Response:
    body = parse_repository_request(await read_json_body(request), RepositoryModelRequest)
    await plane.repository.unload(name, body.parameters or {})
    return Response(status_code=200)
