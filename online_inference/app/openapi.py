"""The OpenAPI document, with the ``/predict`` body schema and examples generated from the card."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from online_inference.app.dataplane import DataPlane


def predict_body(plane: DataPlane) -> dict[str, Any] | None:
    """The request body of ``/predict`` as the loaded card describes it (None until loaded)."""
    if plane.served is None:
        return None
    schema = dict(plane.served.schema.request_json_schema)
    examples = schema.get("examples", [])
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": schema,
                "examples": {
                    name: {"summary": summary, "value": value}
                    for (name, summary), value in zip(
                        [("rows", "features + data rows"), ("instances", "one object per patient")], examples
                    )
                },
            }
        },
    }


def hoist_definitions(document: dict[str, Any]) -> None:
    """Move the ``$defs`` of each request body's schema (written with references to
    ``#/components/schemas/``) into the document's components, where those references point."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document["paths"].values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                schemas.update(media.get("schema", {}).pop("$defs", {}))


def install_openapi(app: FastAPI, plane: DataPlane) -> None:
    """Regenerate the document when the served model changes (it may load after start-up)."""
    cache: dict[str | None, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        key = plane.served.card.sha256 if plane.served else None
        if key not in cache:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            body = predict_body(plane)
            if body is not None:
                document["paths"]["/predict"]["post"]["requestBody"] = body
            hoist_definitions(document)
            cache.clear()
            cache[key] = document
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]
