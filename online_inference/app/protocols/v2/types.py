"""The Open Inference Protocol's REST messages (pydantic): requests as validated, answers as
documented in OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from online_inference.app.errors import InvalidInput, Problem


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
