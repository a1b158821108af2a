"""Service errors: one base class carrying its HTTP status, and the one body they all render to.

Routes and the data plane raise these; nothing else decides a status code. (The handler that
turns them into responses is registered by :mod:`protocols.rest.responses`; this module imports no web framework,
so the data plane and the hot path start without one.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (row, feature) and why."""

    reason: str
    row: int | None = None
    feature: str | None = None


class ServiceError(Exception):
    status_code = 500
    retry_after: int | None = None  # seconds, for a refusal that a later try may pass (Retry-After)

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class InvalidInput(ServiceError):
    status_code = 400


class Unauthenticated(ServiceError):
    """No API key, or one the service does not know (``WWW-Authenticate: Bearer``)."""

    status_code = 401


class PermissionDenied(ServiceError):
    """A known API key outside the endpoint's group."""

    status_code = 403


class ModelNotFound(ServiceError):
    status_code = 404


class RequestTimeout(ServiceError):
    status_code = 408


class PayloadTooLarge(ServiceError):
    status_code = 413


class URITooLong(ServiceError):
    status_code = 414


class HeaderFieldsTooLarge(ServiceError):
    status_code = 431


class UnsupportedMediaType(ServiceError):
    status_code = 415


class NoContributions(ServiceError):
    """The served model has no exact per-feature contributions (its card says why)."""

    status_code = 501


class ModelNotReady(ServiceError):
    status_code = 503


class Overloaded(ServiceError):
    """Refused for load, not for what it asks: the same request succeeds later."""

    status_code = 503

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


MAX_LISTED_PROBLEMS = 100  # an error answer stays small, whatever the request


def summary(error: ServiceError) -> str:
    """The message and the first problem: all that a V2 client (Triton's, KServe's) shows."""
    if not error.problems:
        return error.message
    first = error.problems[0]
    where = ", ".join(part for part in (f"row {first.row}" if first.row is not None else "", first.feature or "") if part)
    more = f" (and {len(error.problems) - 1} more)" if len(error.problems) > 1 else ""
    return f"{error.message}: {where + ': ' if where else ''}{first.reason}{more}"


def error_body(error: ServiceError) -> bytes:
    """``{"error": summary, "problems": [...]}``. ``error`` alone says what is wrong (a V2
    client reads nothing else); ``problems`` lists every problem by row and feature. Past
    MAX_LISTED_PROBLEMS the list is cut and ``problems_total`` gives the full count."""
    body: dict[str, object] = {"error": summary(error)}
    if error.problems:
        body["problems"] = [asdict(p) for p in error.problems[:MAX_LISTED_PROBLEMS]]
        if len(error.problems) > MAX_LISTED_PROBLEMS:
            body["problems_total"] = len(error.problems)
    return orjson.dumps(body)


def error_headers(error: ServiceError) -> dict[str, str]:
    """The headers of an error's answer beside its length: its media type, and ``Retry-After``
    when a later try may pass."""
    headers = {"content-type": "application/json"}
    if isinstance(error, Unauthenticated):
        headers["www-authenticate"] = "Bearer"
    if error.retry_after is not None:
        headers["retry-after"] = str(error.retry_after)
    return headers
