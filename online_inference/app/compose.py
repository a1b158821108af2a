"""The one composition: settings → data plane → FastAPI (every route, built at start) → the front;
and the same data plane's gRPC services → the gRPC transport (:func:`create_grpc`). Tests,
``python -m online_inference.app`` and the images all serve what :func:`create_app` returns, and
:mod:`.server` runs both on one event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from grpclib.reflection.service import ServerReflection

from online_inference import __version__
from online_inference.app.protocols.native import hotpath, request, routes
from online_inference.app.grpc.transport import GrpcLimits, GrpcServer
from online_inference.app.protocols.v2 import grpc as v2_grpc
from online_inference.app.protocols.v2 import rest as v2
from online_inference.app.protocols.v2.proto.pool import POOL
from online_inference.app.settings import Settings, get_settings
from online_inference.app.dataplane.plane import DataPlane, Loader, create_plane
from online_inference.app.dataplane.access import PathGroups
from online_inference.app.protocols.rest import docs_ui
from online_inference.app.protocols.rest.docs_ui import install_docs
from online_inference.app.http.front import Front
from online_inference.app.protocols.rest.middleware import RequestMetrics
from online_inference.app.protocols.native.openapi import install_openapi
from online_inference.app.protocols.rest.responses import register_error_handlers

# Each REST endpoint's API key group, as its protocol declares it (the gRPC services declare theirs).
REST_GROUPS = PathGroups({**routes.ACCESS, **v2.ACCESS, **docs_ui.ACCESS})
DESCRIPTION = (
    "A binary classifier served from ONNX. Validation, bounds, examples and the answer's target come "
    "from the model card (`GET /model`)."
)


def build_fastapi(settings: Settings, plane: DataPlane) -> FastAPI:
    """Every route, the one error handler, the OpenAPI document and request metrics; its lifespan
    starts loading the model (the server listens at once; ``/health`` says ``loading`` meanwhile)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        plane.start_loading()
        yield

    telemetry = dict.fromkeys(("tracing", "metrics", "logs"), settings.OTEL_TELEMETRY)
    app = FastAPI(title="heart-online-inference", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, telemetry=telemetry, docs_url=None, redoc_url=None)  # type: ignore[arg-type]
    app.state.dataplane = plane
    app.include_router(routes.router)
    app.include_router(v2.router)
    register_error_handlers(app)
    app.add_middleware(RequestMetrics, metrics=plane.metrics)
    install_openapi(app, plane, REST_GROUPS)
    install_docs(app)
    return app


def create_app(settings: Settings | None = None, loader: Loader | None = None) -> Front:
    """The service as one ASGI application; ``loader`` replaces the ``MODEL_URI`` loader (tests)."""
    settings = settings or get_settings()
    plane = create_plane(settings, loader, prepare=[request.predict_request])
    app = build_fastapi(settings, plane)
    return Front(app, plane, settings, direct={("POST", hotpath.PATH): hotpath.HotPath(app, plane)}, groups=REST_GROUPS)


def create_grpc(settings: Settings, front: Front) -> GrpcServer:
    """The Open Inference Protocol over gRPC, health and reflection, on ``front``'s data plane and
    work queue (call it on the running loop: grpclib binds its server to the loop it is made on)."""
    plane = front.plane
    services = ServerReflection.extend([v2_grpc.Inference(plane), v2_grpc.Health(plane)], pool=POOL)
    return GrpcServer(services, GrpcLimits.of(settings), plane.admission, front.queue, work=v2_grpc.WORK,
                      observe=plane.metrics.observe_rpc, groups=v2_grpc.ACCESS, access=plane.access)
