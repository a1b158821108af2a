"""The native API: ``/predict``, ``/explain``, ``/health``, ``/model`` and ``/metrics``.

Valid ``/predict`` bodies are answered by :mod:`hotpath` before this route; the route documents
``/predict`` in OpenAPI and answers every request the hot path does not accept (not ready, invalid
input, another media type...), valid bodies with the same bytes as the hot path. ``/explain`` takes
the same bodies, checked the same way.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

import numpy as np

from online_inference.app.dataplane.plane import DataPlane, Served
from online_inference.app.protocols.native import explanation
from online_inference.app.protocols.native.answer import answer_bytes
from online_inference.app.protocols.native.hotpath import PATH
from online_inference.app.protocols.native.request import predict_request
from online_inference.app.protocols.rest.deps import DataPlaneDep, MetricsDep, read_json_body
from online_inference.app.protocols.rest.responses import (ERROR_RESPONSES, NO_CONTRIBUTIONS_RESPONSE, ExplainResponse, HealthResponse,
                                                          PredictResponse, json_response)

router = APIRouter()
# Which API key group may call each endpoint (None: a probe, open to all): see dataplane/access.py.
ACCESS: dict[str, str | None] = {PATH: "inference", explanation.PATH: "inference", "/model": "metadata",
                                 "/metrics": "metrics", "/health": None}


@router.post(
    PATH,
    summary="Predict the target's class and probability for a batch of rows",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,  # the body schema comes from the loaded card: see openapi.py
)
async def predict_route(request: Request) -> Response:
    """Rows as ``{"features": [...the model's features...], "data": [[...a number each...]]}`` or
    as ``{"instances": [{"<feature>": <number>, ...}]}``; answers in request order, each with the
    class of the model's target (under the target's name), its probability and any warnings."""
    plane: DataPlane = request.app.state.dataplane
    served = plane.ready()
    X = await read_rows(request, plane, served, "predict")
    return Response(answer_bytes(served, X, await plane.predict(served, X)), media_type="application/json")


@router.post(
    explanation.PATH,
    summary="Explain: each row's prediction with each feature's contribution to it",
    response_model=ExplainResponse,
    responses={**ERROR_RESPONSES, **NO_CONTRIBUTIONS_RESPONSE},  # the body schema is /predict's: see openapi.py
)
async def explain_route(request: Request) -> Response:
    """The bodies of ``/predict``, checked the same way; each row's answer of ``/predict`` plus its
    ``contributions`` (feature → logit units of the positive class), the ``baseline`` they add up
    to the row's logit from, and its largest ``reasons`` in words."""
    plane: DataPlane = request.app.state.dataplane
    served = plane.ready()
    served.check_explainable()  # before the body is read
    X = await read_rows(request, plane, served, "explain")
    prediction = await plane.predict(served, X, explain=True)
    return Response(explanation.explanation_bytes(served, X, prediction), media_type="application/json")


async def read_rows(request: Request, plane: DataPlane, served: Served, endpoint: str) -> np.ndarray:
    """The request's rows, checked to the card's rules (its body read and decoded)."""
    body = await read_json_body(request)
    return plane.decode(endpoint, lambda: predict_request(served).parse(body))


@router.get(
    "/health",
    summary="Readiness: 200 once the model is loaded and checked, 503 otherwise (loading, failed, draining)",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Loading, failed with the reason, or draining (the server is stopping)."}},
)
async def health(plane: DataPlaneDep) -> Response:
    body = plane.health()
    return json_response(body, 200 if body["status"] == "ready" else 503)


@router.get("/model", summary="The model card", responses={503: ERROR_RESPONSES[503]})
async def model_card(plane: DataPlaneDep) -> Response:
    return json_response(plane.ready().card.to_dict())


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: MetricsDep) -> Response:
    return Response(registry.render(), media_type=registry.content_type)
