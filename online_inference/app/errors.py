"""Service errors: one base class carrying its HTTP status, one handler rendering them all.

Routes and the data plane raise these; nothing else decides a status code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (row, feature) and why."""

    reason: str
    row: int | None = None
    feature: str | None = None


class ServiceError(Exception):
    status_code = 500

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class InvalidInput(ServiceError):
    status_code = 400


class ModelNotFound(ServiceError):
    status_code = 404


class PayloadTooLarge(ServiceError):
    status_code = 413


class UnsupportedMediaType(ServiceError):
    status_code = 415


class ModelNotReady(ServiceError):
    status_code = 503


MAX_LISTED_PROBLEMS = 100  # an error answer stays small, whatever the request


def render_error(error: ServiceError) -> Response:
    """``{"error": message, "problems": [...]}``; ``error`` is also what V2 clients read. Past
    MAX_LISTED_PROBLEMS the list is cut and ``problems_total`` gives the full count."""
    body: dict[str, object] = {"error": error.message}
    if error.problems:
        body["problems"] = [asdict(p) for p in error.problems[:MAX_LISTED_PROBLEMS]]
        if len(error.problems) > MAX_LISTED_PROBLEMS:
            body["problems_total"] = len(error.problems)
    return Response(orjson.dumps(body), status_code=error.status_code, media_type="application/json")


async def handle_service_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    return render_error(error)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, handle_service_error)
