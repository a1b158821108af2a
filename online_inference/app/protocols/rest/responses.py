"""Responses of the REST protocols: the body models of the OpenAPI document (routes build plain
dicts), and the one handler that renders every :class:`ServiceError`."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from online_inference.app.errors import ServiceError, error_body, error_headers


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def render_error(error: ServiceError) -> Response:
    return Response(error_body(error), status_code=error.status_code, headers=error_headers(error))


async def handle_service_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    return render_error(error)


async def handle_http_error(_: Request, error: Exception) -> Response:
    """The framework's own refusals (an unknown path: 404, a method a path lacks: 405) in the same
    body, ``{"error": ...}``: the shape V2 clients read."""
    assert isinstance(error, StarletteHTTPException)
    return Response(error_body(ServiceError(str(error.detail))), status_code=error.status_code,
                    headers=error.headers, media_type="application/json")


def register_error_handlers(app: FastAPI) -> None:
    """Every :class:`ServiceError` answers its own status with its body, and so does every refusal
    of the framework's."""
    app.add_exception_handler(ServiceError, handle_service_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)


WARNINGS = "Values inside the plausible bounds but outside the training range."
PROBABILITY = ("the model's float32 value, written as the shortest decimal that reads back as it (at most 9 "
               "significant digits, never rounded: 0 or 1 only when the model's value is exactly 0 or 1).")


class ModelRef(BaseModel):
    name: str
    version: str


class RowPrediction(BaseModel):
    """A row's answer: the class of the model's target, under the target's name (``GET /model``),
    its probability and any warnings."""

    model_config = ConfigDict(extra="allow")
    probability: float = Field(ge=0, le=1, description=f"P(target = the positive class): {PROBABILITY}")
    warnings: list[str] = Field(description=WARNINGS)


class PredictResponse(BaseModel):
    predictions: list[RowPrediction] = Field(description="One per input row, in request order.")
    model: ModelRef


class RowExplanation(RowPrediction):
    baseline: float = Field(description="The score of the average training row, in logit units: the contributions add up from it to the row's logit.")
    contributions: dict[str, float] = Field(description="Each feature's exact contribution to the row's logit (logit units of the positive class), in the card's feature order.")
    reasons: list[str] = Field(description="The row's largest contributions in words: the feature, its value, and which way it moves the probability.")


class ExplainResponse(BaseModel):
    predictions: list[RowExplanation] = Field(description="One per input row, in request order.")
    model: ModelRef


class HealthModel(ModelRef):
    sha256: str


class LastLoad(BaseModel):
    trigger: Literal["api", "poll"]
    result: Literal["ok", "failed"]
    source: str
    at: str = Field(description="When it ended (UTC, ISO 8601).")
    seconds: float
    model: dict[str, str] | None = Field(default=None, description="The model it served.")
    reason: str | None = Field(default=None, description="Why it failed (the model served before stays).")


class HealthResponse(BaseModel):
    status: Literal["ready", "loading", "failed", "unloaded", "draining"]
    model: HealthModel | None = None
    reason: str | None = Field(default=None, description="Why the model is not ready.")
    last_load: LastLoad | None = Field(default=None, description="How the last load through the repository API (or the poll) ended.")


class ProblemBody(BaseModel):
    reason: str
    row: int | None = None
    feature: str | None = None


class ErrorResponse(BaseModel):
    error: str
    problems: list[ProblemBody] | None = Field(default=None, description="Every problem, up to the first 100.")
    problems_total: int | None = Field(default=None, description="How many problems there were, when over 100.")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid input: every problem with row and feature."},
    408: {"model": ErrorResponse, "description": "The body did not arrive within TIMEOUT_BODY (the connection closes)."},
    413: {"model": ErrorResponse, "description": "Body over MAX_BODY_BYTES or more than MAX_BATCH_ROWS rows."},
    415: {"model": ErrorResponse, "description": "A Content-Type other than JSON."},
    503: {"model": ErrorResponse, "description": "The model is loading or failed to load."},
}
NO_CONTRIBUTIONS_RESPONSE: dict[int | str, dict[str, Any]] = {
    501: {"model": ErrorResponse, "description": "The model has no exact per-feature contributions (its card says why)."}}
