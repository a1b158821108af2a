"""Dependency aliases for the routes (async: a sync dependency would cost a thread-pool hop per request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from online_inference.app.dataplane.plane import DataPlane
from online_inference.app.errors import UnsupportedMediaType
from online_inference.app.protocols.rest.media import is_json, media_type
from online_inference.app.dataplane.metrics import Metrics


async def get_dataplane(request: Request) -> DataPlane:
    return request.app.state.dataplane  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.dataplane.metrics  # type: ignore[no-any-return]


async def read_json_body(request: Request, binary: bool = False) -> bytes:
    """The raw body of a JSON request; 415 for another declared media type (none is taken as JSON).
    ``binary``: the JSON may be followed by bytes (V2's binary tensor data), so
    ``application/octet-stream`` is taken too."""
    media = media_type(request.headers.get("content-type"))
    if not (is_json(media) or (binary and media == "application/octet-stream")):
        raise UnsupportedMediaType(f"send JSON (Content-Type: application/json), not {media!r}")
    return await request.body()


DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
