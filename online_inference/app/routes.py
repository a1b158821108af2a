"""The native API: ``/predict``, ``/health``, ``/model`` and ``/metrics``.

``/predict`` is the hot path: it is served by a plain Starlette route (``FAST_ROUTES``, matched
before FastAPI's), which skips FastAPI's per-request dependency solving; the FastAPI route of the
same function stays registered so that OpenAPI documents it.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.routing import Route

from online_inference.app.dataplane import DataPlane
from online_inference.app.deps import DataPlaneDep, MetricsDep, read_json_body
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
    prediction = plane.infer(served, X)
    probabilities = np.round(prediction.positive.astype(np.float64), 6).tolist()
    rows = [
        {"condition": label, "probability": probability, "warnings": warnings}
        for label, probability, warnings in zip(
            prediction.labels.tolist(), probabilities, served.schema.warnings_for(X)
        )
    ]
    card = served.card
    return json_response({"predictions": rows, "model": {"name": card.name, "version": card.version}})


@router.get(
    "/health",
    summary="Readiness: 200 once the model is loaded and checked, 503 otherwise",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Loading, or failed with the reason."}},
)
async def health(plane: DataPlaneDep) -> Response:
    body = plane.health()
    return json_response(body, 200 if body["status"] == "ready" else 503)


@router.get("/model", summary="The model card", responses={503: ERROR_RESPONSES[503]})
async def model_card(plane: DataPlaneDep) -> Response:
    return json_response(plane.ready().card.model_dump(mode="json"))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: MetricsDep) -> Response:
    return Response(registry.render(), media_type=registry.content_type)


class FastRoute(Route):
    """A plain Starlette route that, like FastAPI's, records itself in the scope (metrics label)."""

    async def handle(self, scope, receive, send):  # type: ignore[no-untyped-def]
        scope["route"] = self
        await super().handle(scope, receive, send)


FAST_ROUTES = [FastRoute("/predict", predict, methods=["POST"])]
