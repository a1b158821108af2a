"""Open Inference Protocol (V2) over REST, with Triton's binary tensor data extension
(:mod:`v2_binary`). Only converts wire formats: the V2 types stay here, validation and inference
are the data plane's. Every path takes the model's version too (``/versions/{version}``)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from online_inference import __version__
from online_inference.app.protocols.v2 import binary as v2_binary
from online_inference.app.dataplane.plane import DataPlane, Served
from online_inference.app.protocols.rest.deps import DataPlaneDep, read_json_body
from online_inference.app.errors import InvalidInput, PayloadTooLarge, Problem
from online_inference.app.dataplane.rules import may_hold_booleans
from online_inference.app.protocols.rest.responses import ERROR_RESPONSES, ErrorResponse, json_response
from online_inference.app.model.session import Prediction

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])

MODEL_RESPONSES = {**ERROR_RESPONSES,
                   404: {"model": ErrorResponse, "description": "No model of that name (or version) is served."}}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {503: {"description": "Not ready: the model is loading or failed."}}

SERVER_NAME = "heart-online-inference"
EXTENSIONS = ["binary_tensor_data"]
LIVE = b'{"live":true}'


class Parameters(BaseModel):
    model_config = ConfigDict(extra="allow")


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = Field(None, description="Absent when parameters.binary_data_size gives the bytes after the JSON.")


class RequestOutput(BaseModel):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ResponseOutput(TensorMetadata):
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size, for an output sent as bytes.")
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]


REQUEST_ADAPTER = TypeAdapter(InferenceRequest)


def parse_request(body: bytes) -> InferenceRequest:
    try:
        return REQUEST_ADAPTER.validate_json(body)
    except ValidationError as error:
        problems = [Problem(reason=f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}") for e in error.errors()]
        raise InvalidInput("invalid V2 inference request", problems) from None


def flatten(data: list[Any]) -> list[Any]:
    """Row-major flattening of nested lists (V2 allows both flat and nested ``data``)."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def input_rows(tensor: RequestInput, binary: memoryview, input_name: str, width: int, max_rows: int) -> list[list[Any]]:
    """Check name, datatype and shape ``[N, width]``; return the N rows, from the JSON ``data`` or
    from the bytes after the JSON."""
    if tensor.name != input_name:
        raise InvalidInput(f"unknown input {tensor.name!r}; the model's input is {input_name!r}")
    if tensor.datatype not in v2_binary.DATATYPES:
        raise InvalidInput(f"input {input_name!r} has an unknown datatype {tensor.datatype!r}")
    if tensor.datatype != "FP32":
        raise InvalidInput(f"input {input_name!r} must be FP32, got {tensor.datatype}")
    if len(tensor.shape) != 2 or tensor.shape[1] != width or tensor.shape[0] < 1:
        raise InvalidInput(f"input {input_name!r} must have shape [N, {width}] with N >= 1, got {tensor.shape}")
    size = v2_binary.binary_size(tensor.parameters)
    if size is None:
        v2_binary.check_all_read(binary, 0)
        if tensor.data is None:
            raise InvalidInput(f"input {input_name!r} has neither data nor parameters.binary_data_size")
        values = flatten(tensor.data)
    else:
        if tensor.data is not None:
            raise InvalidInput(f"input {input_name!r} has both data and parameters.binary_data_size")
        if tensor.shape[0] > max_rows:
            raise PayloadTooLarge(f"at most {max_rows} rows per request, got {tensor.shape[0]}")
        data = v2_binary.take(binary, 0, size, input_name)
        v2_binary.check_all_read(binary, size)
        values = v2_binary.read_tensor(input_name, tensor.datatype, tensor.shape, data).ravel().tolist()
    if len(values) != tensor.shape[0] * width:
        raise InvalidInput(f"shape {tensor.shape} needs {tensor.shape[0] * width} values, got {len(values)}")
    return [values[i : i + width] for i in range(0, len(values), width)]


def requested_outputs(v2_request: InferenceRequest, available: list[str]) -> list[tuple[str, bool]]:
    """The outputs asked for (all by default), each with whether it is wanted as bytes."""
    asked = v2_request.outputs or [RequestOutput(name=name) for name in available]
    unknown = [o.name for o in asked if o.name not in available]
    if unknown:
        raise InvalidInput(f"unknown outputs {unknown}; the model gives {available}")
    return [(o.name, v2_binary.wants_binary(o.parameters, v2_request.parameters)) for o in asked]


def build_outputs(prediction: Prediction, names: dict[str, str], wanted: list[tuple[str, bool]]) -> tuple[list[dict[str, Any]], bytes]:
    tensors = {
        names["label"]: ("INT64", prediction.labels),
        names["probabilities"]: ("FP32", prediction.probabilities),
    }
    return v2_binary.encode_outputs([
        ({"name": name, "datatype": tensors[name][0], "shape": list(tensors[name][1].shape)}, tensors[name][1], binary)
        for name, binary in wanted
    ])


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
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})


@router.get("/models/{name}", summary="Model metadata", response_model=ModelMetadata, responses=MODEL_RESPONSES)
async def model_metadata(name: str, plane: DataPlaneDep) -> Response:
    return describe_model(plane.ready_named(name))


@router.get("/models/{name}/versions/{version}", summary="Model metadata, of a version",
            response_model=ModelMetadata, responses=MODEL_RESPONSES)
async def model_version_metadata(name: str, version: str, plane: DataPlaneDep) -> Response:
    return describe_model(plane.ready_named(name, version))


def describe_model(served: Served) -> Response:
    card = served.card
    width = len(card.features)
    metadata = ModelMetadata(
        name=card.name,
        versions=[card.version],
        platform="onnxruntime_onnx",
        inputs=[TensorMetadata(name=card.input_name, datatype="FP32", shape=[-1, width])],
        outputs=[
            TensorMetadata(name=card.label_output, datatype="INT64", shape=[-1]),
            TensorMetadata(name=card.probability_output, datatype="FP32", shape=[-1, len(card.classes)]),
        ],
    )
    return json_response(metadata.model_dump())


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
    card = served.card
    header_length = request.headers.get(v2_binary.HEADER_LENGTH)
    body = await read_json_body(request, binary=header_length is not None)
    names = {"label": card.label_output, "probabilities": card.probability_output}

    def parse() -> Any:
        header, binary = v2_binary.split_body(body, header_length)
        served.schema.check_value_count(header)
        v2_request = parse_request(header)
        if len(v2_request.inputs) != 1:
            raise InvalidInput(f"expected exactly one input {card.input_name!r}, got {len(v2_request.inputs)}")
        wanted = requested_outputs(v2_request, list(names.values()))
        tensor = v2_request.inputs[0]
        rows = input_rows(tensor, binary, card.input_name, len(card.features), served.schema.max_rows)
        numbers_only = v2_binary.binary_size(tensor.parameters) is not None or not may_hold_booleans(header)
        return served.schema.parse_rows(rows, numbers_only), v2_request.id, wanted  # nothing parsed outlives the parse

    X, request_id, wanted = plane.validate("v2", parse)
    outputs, blob = build_outputs(await plane.predict(served, X), names, wanted)
    answer: dict[str, Any] = {"model_name": card.name, "model_version": card.version, "outputs": outputs}
    if request_id is not None:
        answer["id"] = request_id
    if not blob:
        return json_response(answer)
    header = orjson.dumps(answer)
    return Response(header + blob, media_type=v2_binary.BINARY_MEDIA_TYPE,
                    headers={"Inference-Header-Content-Length": str(len(header))})
