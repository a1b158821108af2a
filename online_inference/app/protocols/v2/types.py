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


class RepositoryIndexRequest(BaseModel):
    """Triton's model repository extension: the index's body (none is ``{}``)."""

    model_config = ConfigDict(extra="forbid")
    ready: bool = Field(False, description="Only the models ready for inference.")


class RepositoryIndexEntry(BaseModel):
    name: str
    version: str | None = None
    state: str = Field(description="READY, LOADING or UNAVAILABLE (unloaded, or failed: the reason says).")
    reason: str | None = Field(None, description="Why the model is not ready.")


class RepositoryModelRequest(BaseModel):
    """A load's or an unload's body (none is ``{}``)."""

    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, Any] | None = Field(None, description=(
        "load: `uri` and `sha256` (both), the artifact to load instead of MODEL_URI, where MODEL_LOAD_FROM_REQUEST allows "
        "it; unload: `unload_dependents` (a model has none here)."))


REQUEST_ADAPTER = TypeAdapter(InferenceRequest)


def parse_repository_request(body: bytes, kind: type[BaseModel]) -> Any:
    """A repository request's body (empty: the defaults), InvalidInput if it is not of ``kind``."""
    try:
        return kind.model_validate_json(body or b"{}")
    except ValidationError as error:
        problems = [Problem(reason=f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}") for e in error.errors()]
        raise InvalidInput(f"invalid repository request ({kind.__name__})", problems) from None


def parse_request(body: bytes) -> InferenceRequest:
    try:
        return REQUEST_ADAPTER.validate_json(body)
    except ValidationError as error:
        problems = [Problem(reason=f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}") for e in error.errors()]
        raise InvalidInput("invalid V2 inference request", problems) from None
