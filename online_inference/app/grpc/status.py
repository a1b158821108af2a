"""The service's errors (:mod:`...errors`) as gRPC's status codes: the one table."""

from __future__ import annotations

from grpclib.const import Status

from online_inference.app.errors import (InvalidInput, ModelNotFound, ModelNotReady, NoContributions, Overloaded,
                                         PayloadTooLarge, PermissionDenied, RequestTimeout, ServiceError, Unauthenticated)

# The service's errors as gRPC's codes: the most specific class first. What Triton answers: a
# client's mistake INVALID_ARGUMENT, an unknown model NOT_FOUND, a model not ready and a full queue
# UNAVAILABLE (gRPC's code for "retry later"); a message over the limit RESOURCE_EXHAUSTED (grpcio's); contributions of a model that has none
# UNIMPLEMENTED (HTTP's 501).
STATUS: tuple[tuple[type[ServiceError], Status], ...] = (
    (Overloaded, Status.UNAVAILABLE),
    (ModelNotReady, Status.UNAVAILABLE),
    (ModelNotFound, Status.NOT_FOUND),
    (PayloadTooLarge, Status.RESOURCE_EXHAUSTED),
    (RequestTimeout, Status.DEADLINE_EXCEEDED),
    (InvalidInput, Status.INVALID_ARGUMENT),
    (NoContributions, Status.UNIMPLEMENTED),
    (Unauthenticated, Status.UNAUTHENTICATED),
    (PermissionDenied, Status.PERMISSION_DENIED),
)


def status_of(error: ServiceError) -> Status:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return Status.INVALID_ARGUMENT if 400 <= error.status_code < 500 else Status.INTERNAL
