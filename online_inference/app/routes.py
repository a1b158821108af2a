"""The native API: ``/predict``, ``/health``, ``/model`` and ``/metrics``.

Valid ``/predict`` bodies and ``/health`` are answered by :mod:`hotpath` before these routes; the
routes document them in OpenAPI and answer every request the hot path declines (not ready,
invalid input, another media type...) with the same bytes it would.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from online_inference.app.dataplane import DataPlane
from online_inference.app.deps import DataPlaneDep, MetricsDep, read_json_body
from online_inference.app.hotpath import health_answer, predict_body
from online_inference.app.responses import ERROR_RESPONSES, HealthResponse, PredictResponse, json_response

router = APIRouter()


@router.post(
    "/predict",
    summary="Predict heart disease for a batch of patients",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,  # the body schema comes from the loaded card: see openapi.py
)
async def predict(request: Request) -> Response:
    """Rows as ``{"features": [...13 names...], "data": [[...13 numbers...]]}`` or as
    ``{"instances": [{"age": 63, ...}]}``; answers in request order."""
    plane: DataPlane = request.app.state.dataplane
    served = plane.ready()
    body = await read_json_body(request)
    X = plane.validate("predict", lambda: served.schema.parse_predict_body(body))
    return Response(predict_body(served, X, await plane.predict(served, X)), media_type="application/json")


@router.get(
    "/health",
    summary="Readiness: 200 once the model is loaded and checked, 503 otherwise",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Loading, or failed with the reason."}},
)
async def health(plane: DataPlaneDep) -> Response:
    status, body = health_answer(plane)
    return Response(body, status_code=status, media_type="application/json")


@router.get("/model", summary="The model card", responses={503: ERROR_RESPONSES[503]})
async def model_card(plane: DataPlaneDep) -> Response:
    return json_response(plane.ready().card.to_dict())


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: MetricsDep) -> Response:
    return Response(registry.render(), media_type=registry.content_type)
