"""The application factory: settings → data plane → routes; the model loads in the background."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from online_inference import __version__
from online_inference.app import routes, v2
from online_inference.app.config import Settings, get_settings
from online_inference.app.dataplane import DataPlane, Loader, default_loader
from online_inference.app.hotpath import HotPath
from online_inference.app.metrics import Metrics
from online_inference.app.middleware import ServiceMiddleware
from online_inference.app.openapi import install_openapi
from online_inference.app.responses import register_error_handlers

DESCRIPTION = (
    "Heart-disease classifier (UCI Cleveland) served from ONNX. Validation, bounds and examples "
    "come from the model card (`GET /model`)."
)


def create_app(settings: Settings | None = None, loader: Loader | None = None) -> FastAPI:
    """Build the service. ``loader`` replaces the default ``MODEL_URI`` loader (tests inject one)."""
    settings = settings or get_settings()
    metrics = Metrics()
    plane = DataPlane(loader or default_loader(settings), metrics, settings.MAX_BATCH_ROWS)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        plane.start_loading()  # the server listens at once; /health says "loading" meanwhile
        yield

    telemetry = dict.fromkeys(("tracing", "metrics", "logs"), settings.OTEL_TELEMETRY)
    app = FastAPI(title="heart-online-inference", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  telemetry=telemetry)  # type: ignore[arg-type]
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.dataplane = plane
    app.include_router(routes.router)
    app.include_router(v2.router)
    register_error_handlers(app)
    app.add_middleware(ServiceMiddleware, metrics=metrics, max_body_bytes=settings.MAX_BODY_BYTES)
    app.add_middleware(HotPath, plane=plane, max_body_bytes=settings.MAX_BODY_BYTES)  # outermost
    install_openapi(app, plane)
    return app


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
