"""Open Inference Protocol (V2) over REST. Only converts wire formats: the V2 types stay here,
validation and inference are the data plane's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from online_inference import __version__
from online_inference.app.deps import DataPlaneDep, read_json_body
from online_inference.app.errors import InvalidInput, Problem
from online_inference.app.responses import ERROR_RESPONSES, ErrorResponse, json_response
from online_inference.app.session import Prediction

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])

MODEL_RESPONSES = {**ERROR_RESPONSES, 404: {"model": ErrorResponse, "description": "No model of that name is served."}}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {503: {"description": "Not ready: the model is loading or failed."}}

SERVER_NAME = "heart-online-inference"
LIVE = b'{"live":true}'


class Parameters(BaseModel):
    model_config = ConfigDict(extra="allow")


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]


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
    data: list[Any]


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


def split_rows(tensor: RequestInput, input_name: str, width: int) -> list[list[Any]]:
    """Check name, datatype and shape ``[N, width]``; return the N rows."""
    if tensor.name != input_name:
        raise InvalidInput(f"unknown input {tensor.name!r}; the model's input is {input_name!r}")
    if tensor.datatype != "FP32":
        raise InvalidInput(f"input {input_name!r} must be FP32, got {tensor.datatype}")
    if len(tensor.shape) != 2 or tensor.shape[1] != width or tensor.shape[0] < 1:
        raise InvalidInput(f"input {input_name!r} must have shape [N, {width}] with N >= 1, got {tensor.shape}")
    values = flatten(tensor.data)
    if len(values) != tensor.shape[0] * width:
        raise InvalidInput(f"shape {tensor.shape} needs {tensor.shape[0] * width} values, got {len(values)}")
    return [values[i : i + width] for i in range(0, len(values), width)]


def requested_outputs(v2_request: InferenceRequest, available: list[str]) -> list[str]:
    wanted = [o.name for o in v2_request.outputs] if v2_request.outputs else available
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise InvalidInput(f"unknown outputs {unknown}; the model gives {available}")
    return wanted


def build_outputs(prediction: Prediction, names: dict[str, str], wanted: list[str]) -> list[dict[str, Any]]:
    tensors = {
        names["label"]: {"datatype": "INT64", "shape": list(prediction.labels.shape), "array": prediction.labels},
        names["probabilities"]: {
            "datatype": "FP32", "shape": list(prediction.probabilities.shape), "array": prediction.probabilities,
        },
    }
    return [
        {"name": name, "datatype": tensors[name]["datatype"], "shape": tensors[name]["shape"],
         "data": tensors[name]["array"].ravel().tolist()}
        for name in wanted
    ]


@router.get("/health/live", summary="Liveness: the process answers")
async def live() -> Response:
    return Response(LIVE, media_type="application/json")


@router.get("/health/ready", summary="Readiness: the model is loaded and checked", responses=READY_RESPONSES)
async def ready(plane: DataPlaneDep) -> Response:
    is_ready = plane.health()["status"] == "ready"
    return json_response({"ready": is_ready}, 200 if is_ready else 503)


@router.get("", summary="Server metadata")
async def server_metadata() -> Response:
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": []})


@router.get("/models/{name}", summary="Model metadata", response_model=ModelMetadata, responses=MODEL_RESPONSES)
async def model_metadata(name: str, plane: DataPlaneDep) -> Response:
    card = plane.ready_named(name).card
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
    plane.ready_named(name)
    return json_response({"name": name, "ready": True})


@router.post(
    "/models/{name}/infer",
    summary="Inference: FP32 [N, 13] in, labels and probabilities out",
    response_model=InferenceResponse,
    responses=MODEL_RESPONSES,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": InferenceRequest.model_json_schema()}}}},
)
async def infer(name: str, request: Request, plane: DataPlaneDep) -> Response:
    served = plane.ready_named(name)
    card = served.card
    body = await read_json_body(request)

    names = {"label": card.label_output, "probabilities": card.probability_output}

    def parse() -> Any:
        v2_request = parse_request(body)
        if len(v2_request.inputs) != 1:
            raise InvalidInput(f"expected exactly one input {card.input_name!r}, got {len(v2_request.inputs)}")
        wanted = requested_outputs(v2_request, list(names.values()))
        rows = split_rows(v2_request.inputs[0], card.input_name, len(card.features))
        return served.schema.parse_rows(rows), v2_request, wanted

    X, v2_request, wanted = plane.validate("v2", parse)
    outputs = build_outputs(await plane.predict(served, X), names, wanted)
    body_out: dict[str, Any] = {"model_name": card.name, "model_version": card.version, "outputs": outputs}
    if v2_request.id is not None:
        body_out["id"] = v2_request.id
    return json_response(body_out)
