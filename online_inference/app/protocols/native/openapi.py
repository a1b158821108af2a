"""The OpenAPI document, with the ``/predict`` and ``/explain`` body schema, examples and answers
generated from the card (``/explain``'s example answer is the served model's, for the card's
example row), and the card's description. With API keys on, it declares the bearer scheme and, on
each operation that needs a key, ``security`` and the key's group (``x-api-key-group``), so that
Swagger UI's "Authorize" sends the key; the probes declare none."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict

from online_inference.app.dataplane.access import ANY_KEY, PathGroups
from online_inference.app.dataplane.plane import DataPlane, Served
from online_inference.app.protocols.native import explanation
from online_inference.app.protocols.native.hotpath import PATH
from online_inference.app.protocols.native.request import predict_request
from online_inference.app.protocols.rest.responses import PROBABILITY, WARNINGS, ExplainResponse, ModelRef, RowExplanation
from online_inference.card import ModelCard, legend


def request_body(served: Served) -> dict[str, Any]:
    """The request body of ``/predict`` as the served model's card describes it."""
    schema = dict(predict_request(served).json_schema)
    examples = schema.get("examples", [])
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": schema,
                "examples": {
                    name: {"summary": summary, "value": value}
                    for (name, summary), value in zip(
                        [("rows", "features + data rows"), ("instances", "one object per row")], examples
                    )
                },
            }
        },
    }


def row_fields(card: ModelCard) -> dict[str, Any]:
    """What a ``/predict`` row holds, as the card answers: the class of its target under the
    target's name (what each class means, when the card labels them), the probability of its
    positive class, the warnings."""
    classes = Literal[tuple(card.classes)]  # type: ignore[valid-type]
    meanings = f": {legend(card.class_labels)}" if card.class_labels else ""
    return {
        card.target: Annotated[classes, Field(description=f"The predicted class of {card.target!r}{meanings}.")],
        "probability": Annotated[float, Field(ge=0, le=1, description=(
            f"P({card.target} = {card.class_name(card.positive_class)}): {PROBABILITY}"))],
        "warnings": Annotated[list[str], Field(description=WARNINGS)],
    }


def explanation_fields(card: ModelCard) -> dict[str, Any]:
    """What an ``/explain`` row holds beside a ``/predict`` row's: the contributions as an object
    of the card's features."""
    described = RowExplanation.model_fields
    contributions = TypedDict("Contributions", {name: float for name in card.feature_names})  # type: ignore[misc]
    return {
        "baseline": Annotated[float, Field(description=described["baseline"].description)],
        "contributions": Annotated[contributions, Field(description=described["contributions"].description)],
        "reasons": Annotated[list[str], Field(description=described["reasons"].description)],
    }


def answer_schema(name: str, row: Any) -> dict[str, Any]:
    """The component ``name`` (an answer of rows, then the model) and the components it refers to."""
    answer = TypedDict(name, {  # type: ignore[misc]
        "predictions": Annotated[list[row], Field(description="One per input row, in request order.")],  # type: ignore[valid-type]
        "model": ModelRef,
    })
    schema = TypeAdapter(answer).json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs"), name: schema}


def answer_schemas(card: ModelCard) -> dict[str, Any]:
    """The components ``PredictResponse`` and ``ExplainResponse`` (and their rows) as the card answers."""
    fields = row_fields(card)
    predicted = TypedDict("RowPrediction", fields)  # type: ignore[misc]
    explained = TypedDict(RowExplanation.__name__, {**fields, **explanation_fields(card)})  # type: ignore[misc]
    return {**answer_schema("PredictResponse", predicted), **answer_schema(ExplainResponse.__name__, explained)}


def explanation_example(served: Served) -> dict[str, Any] | None:
    """The served model's ``/explain`` answer for the card's example row (None if it has no contributions)."""
    if served.card.contributions.output is None:
        return None
    X = np.array([[feature.example for feature in served.card.features]], dtype=np.float32)
    return orjson.loads(explanation.explanation_bytes(served, X, served.session.run(X, explain=True)))  # type: ignore[no-any-return]


def show_example(document: dict[str, Any], path: str, example: dict[str, Any] | None) -> None:
    if example is not None:
        document["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["example"] = example


def hoist_definitions(document: dict[str, Any]) -> None:
    """Move the ``$defs`` of each request body's schema (written with references to
    ``#/components/schemas/``) into the document's components, where those references point."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document["paths"].values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                schemas.update(media.get("schema", {}).pop("$defs", {}))


BEARER = {"bearer": {"type": "http", "scheme": "bearer"}}  # Swagger UI's "Authorize" asks for the key


def group_text(group: str) -> str:
    return "any known API key" if group == ANY_KEY else f"an API key of the group `{group}`"


def refusals(document: dict[str, Any], group: str) -> dict[str, Any]:
    """The answers 401 and 403 of an operation that needs a key of ``group``, in the service's error shape."""
    shape = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    error = shape if "ErrorResponse" in document.get("components", {}).get("schemas", {}) else {}
    return {"401": {"description": "No API key, or one the service does not know (`WWW-Authenticate: Bearer`).", **error},
            "403": {"description": f"An API key outside the group `{group}`.", **error}}


def declare_security(document: dict[str, Any], groups: PathGroups) -> None:
    """The bearer scheme, and on each operation whose path needs a key its ``security``, group (in
    ``x-api-key-group`` and its description) and refusals; a probe (group None) declares none."""
    document.setdefault("components", {})["securitySchemes"] = BEARER
    for path, operations in document["paths"].items():
        group = groups.group_of(path)
        if group is None:
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}]
            operation["x-api-key-group"] = group
            needs = f"Needs {group_text(group)}."
            operation["description"] = f"{operation['description']}\n\n{needs}" if operation.get("description") else needs
            operation.setdefault("responses", {}).update(refusals(document, group))


def document_of(app: FastAPI, served: Served | None, security: PathGroups | None) -> dict[str, Any]:
    """The document for ``served`` (None: no model yet); ``security``: each path's API key group,
    when keys are on."""
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    if served is not None:
        card, body = served.card, request_body(served)
        document["info"]["description"] = f"{card.description}\n\n{app.description}"
        for path in (PATH, explanation.PATH):
            document["paths"][path]["post"]["requestBody"] = body
        document["components"]["schemas"].update(answer_schemas(card))
        show_example(document, explanation.PATH, explanation_example(served))
    hoist_definitions(document)
    if security is not None:
        declare_security(document, security)
    return document


def install_openapi(app: FastAPI, plane: DataPlane, groups: PathGroups | None = None) -> None:
    """Regenerate the document when the served model changes (it may load after start-up); with
    API keys on (``plane.access``), ``groups`` says which key each operation needs. The document is
    cached by what it is made of: the model's sha256 and whether keys are on."""
    cache: dict[tuple[str | None, bool], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        served, keys_on = plane.served, plane.access.enabled  # read once: the document is of this model
        key = (served.card.sha256 if served else None, keys_on)
        if key not in cache:
            document = document_of(app, served, (groups or PathGroups({})) if keys_on else None)
            cache.clear()
            cache[key] = document
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]
