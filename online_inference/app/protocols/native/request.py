"""``/predict``'s body as validated in full (pydantic), for the bodies the decoder
(:mod:`.decode`) does not accept: it explains every problem (form, keys, rows, values: the card's
types from :mod:`...dataplane.validation`). And the same contract as a JSON schema, for OpenAPI.

One set per served model (:func:`predict_request`), built the first time it is asked for.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model, model_validator

from online_inference.app.dataplane.validation import Validator, build_instance_type, build_row_type
from online_inference.app.dataplane.plane import Served
from online_inference.app.dataplane.rules import CardRules
from online_inference.app.errors import InvalidInput, PayloadTooLarge, Problem
from online_inference.app.protocols.native.decode import PredictDecoder
from online_inference.card import ModelCard


def build_request_model(card: ModelCard, max_rows: int) -> type[BaseModel]:
    """The ``/predict`` body as validated: ``features`` + ``data`` rows, or ``instances`` objects.

    One model with both forms (no union), so that every error names its row and feature; the
    form and the feature order are checked first, on the raw object. Absent fields default to
    None, but an explicit ``null`` is a type error.
    """
    expected = card.feature_names

    def check_form(body: Any) -> Any:
        """Which form, and the feature order, before any row is read (rows depend on both)."""
        if not isinstance(body, dict):
            return body  # pydantic reports the type
        if "instances" in body and ("data" in body or "features" in body):
            raise ValueError("give either 'features' and 'data', or 'instances', not both")
        if "instances" not in body and "data" not in body:
            raise ValueError("give either 'features' and 'data', or 'instances'")
        if "data" in body and body.get("features") != expected:
            raise ValueError(f"'features' must list the model's features in this order: {expected}")
        return body

    rows = {"min_length": 1, "max_length": max_rows}
    return create_model(  # type: ignore[call-overload, no-any-return]
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        __validators__={"check_form": model_validator(mode="before")(check_form)},
        features=(list[str], Field(None)),
        data=(list[build_row_type(card)], Field(None, **rows)),  # type: ignore[misc]
        instances=(list[build_instance_type(card)], Field(None, **rows)),  # type: ignore[misc]
    )


def build_request_json_schema(card: ModelCard, max_rows: int) -> dict[str, Any]:
    """The same contract for OpenAPI: exactly one of the two forms, ``features`` a constant."""
    expected = card.feature_names
    rows = {"min_length": 1, "max_length": max_rows}
    by_rows = create_model(  # type: ignore[call-overload]
        "PredictRows",
        __config__=ConfigDict(extra="forbid"),
        features=(list[str], Field(json_schema_extra={"const": expected}, description="Exactly the model's features, in order.")),
        data=(list[build_row_type(card)], Field(**rows, description=f"One row of {len(expected)} numbers each, in the order of `features`.")),  # type: ignore[misc]
    )
    by_instances = create_model(  # type: ignore[call-overload]
        "PredictInstances",
        __config__=ConfigDict(extra="forbid"),
        instances=(list[build_instance_type(card)], Field(**rows, description="One object per row, keyed by feature name.")),  # type: ignore[misc]
    )
    schema = TypeAdapter(by_rows | by_instances).json_schema(ref_template="#/components/schemas/{model}")
    schema["oneOf"] = schema.pop("anyOf")
    example_row = [f.example for f in card.features]
    schema["examples"] = [
        {"features": expected, "data": [example_row]},
        {"instances": [dict(zip(expected, example_row))]},
    ]
    return schema


def find_duplicate_keys(body: bytes) -> list[str]:
    """Keys repeated within one JSON object (JSON parsers disagree on them: refuse, never guess).
    Only run when the fast path declined; a body json cannot parse is left to pydantic."""
    repeated: list[str] = []

    def collect(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        return dict(pairs)

    try:
        json.loads(body, object_pairs_hook=collect)
    except (ValueError, RecursionError):
        return []
    return repeated


class PredictRequest:
    """How one served model's ``/predict`` bodies are read: the decoder first, pydantic for the rest."""

    def __init__(self, card: ModelCard, rules: CardRules, validator: Validator):
        self.rules = rules
        self.validator = validator
        self.names = card.feature_names
        self.max_rows = max_rows = rules.max_rows
        self.decoder = PredictDecoder(rules)
        self.request_adapter = TypeAdapter(build_request_model(card, max_rows))
        self.json_schema = build_request_json_schema(card, max_rows)

    def parse(self, body: bytes) -> np.ndarray:
        """Raw ``/predict`` JSON → float32 ``[N, features]``; InvalidInput / PayloadTooLarge otherwise."""
        self.rules.check_value_count(body)
        X = self.decoder.read(body)  # (its values are counted: the line above)
        return X if X is not None else self.parse_fully(body)

    def parse_fully(self, body: bytes) -> np.ndarray:
        """The full path alone (pydantic on the card's schema), which explains every problem."""
        duplicates = find_duplicate_keys(body)
        if duplicates:
            raise InvalidInput("invalid input", [Problem(reason=f"duplicate key {k!r}: a JSON object must not repeat a key") for k in duplicates])
        try:
            request = self.request_adapter.validate_json(body)
        except ValidationError as error:
            raise self.to_service_error(error) from None
        if request.data is not None:
            return np.array(request.data, dtype=np.float32)
        return np.array([[row[n] for n in self.names] for row in request.instances], dtype=np.float32)

    def to_service_error(self, error: ValidationError) -> InvalidInput | PayloadTooLarge:
        details = error.errors()
        for detail in details:
            if detail["type"] == "too_long" and len(detail["loc"]) == 1:
                return PayloadTooLarge(f"at most {self.max_rows} rows per request")
        if details and details[0]["type"] == "json_invalid":
            reason = details[0]["ctx"]["error"]
            if reason.startswith("number out of range"):  # an integer of thousands of digits: valid JSON
                return InvalidInput(f"a number is out of range: {reason}")
            return InvalidInput(f"malformed JSON: {reason}")
        return InvalidInput("invalid input", [self.validator.describe(d, d["loc"]) for d in details])



@functools.lru_cache(maxsize=2)  # the model served, and the one before it while requests finish
def predict_request(served: Served) -> PredictRequest:
    return PredictRequest(served.card, served.rules, served.validator)
