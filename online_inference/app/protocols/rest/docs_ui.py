"""The interactive documentation (Swagger UI at ``/docs``), served from the service itself:
FastAPI's own page loads its script and stylesheet from a CDN, so an air-gapped cluster saw a
blank page. The assets come from the PyPI package ``fastapi-offline`` (pinned in
requirements/runtime.txt like every dependency); only its files are used, through FastAPI's
documented ``get_swagger_ui_html``, and the package is never imported. ReDoc is not served: its
1.1 MB script would have put the distroless image over its size budget, for a second rendering
of the same document."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
# Which API key group may read each page (see dataplane/access.py): the API's description is metadata.
ACCESS: dict[str, str | None] = {"/docs": "metadata", "/docs/oauth2-redirect": "metadata",
                                 ASSETS_URL + "/{file}": "metadata", "/openapi.json": "metadata"}


def assets_directory() -> Path:
    spec = importlib.util.find_spec("fastapi_offline")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("fastapi-offline, a runtime dependency (requirements/runtime.in), is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install_docs(app: FastAPI) -> None:
    """``/docs``, its OAuth2 redirect page and its assets, on an app built with ``docs_url=None,
    redoc_url=None``."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_directory()), name="docs-assets")
    title, openapi_url = app.title, app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} - Swagger UI",
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css", swagger_favicon_url=favicon)

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
