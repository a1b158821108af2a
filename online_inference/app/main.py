"""The application factories: settings → data plane → routes; the model loads in the background."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from online_inference import __version__
from online_inference.app import routes, v2
from online_inference.app.config import Settings, get_settings
from online_inference.app.dataplane import DataPlane, Loader, create_plane
from online_inference.app.hotpath import HotPath
from online_inference.app.middleware import ServiceMiddleware
from online_inference.app.openapi import install_openapi
from online_inference.app.responses import register_error_handlers

DESCRIPTION = (
    "Heart-disease classifier (UCI Cleveland) served from ONNX. Validation, bounds and examples "
    "come from the model card (`GET /model`)."
)


def build_app(settings: Settings, plane: DataPlane) -> FastAPI:
    """The full application over a data plane: every route, the error handler, the OpenAPI
    document, the body limit and request metrics. It neither loads the model nor has the hot
    path in front: :func:`create_app` and :mod:`front` compose those."""
    telemetry = dict.fromkeys(("tracing", "metrics", "logs"), settings.OTEL_TELEMETRY)
    app = FastAPI(title="heart-online-inference", version=__version__, description=DESCRIPTION,
                  telemetry=telemetry)  # type: ignore[arg-type]
    app.state.settings = settings
    app.state.metrics = plane.metrics
    app.state.dataplane = plane
    app.include_router(routes.router)
    app.include_router(v2.router)
    register_error_handlers(app)
    app.add_middleware(ServiceMiddleware, metrics=plane.metrics, max_body_bytes=settings.MAX_BODY_BYTES)
    install_openapi(app, plane)
    return app


def create_app(settings: Settings | None = None, loader: Loader | None = None) -> FastAPI:
    """The whole service as one FastAPI app (what tests drive with ``TestClient``): the hot path
    as its outermost middleware, the model loading in the background from its lifespan."""
    settings = settings or get_settings()
    plane = create_plane(settings, loader)
    app = build_app(settings, plane)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        plane.start_loading()  # the server listens at once; /health says "loading" meanwhile
        yield

    app.router.lifespan_context = lifespan
    app.add_middleware(HotPath, plane=plane, max_body_bytes=settings.MAX_BODY_BYTES)  # outermost
    return app
