"""Request validation generated from the model card (pydantic), and the warnings it implies.

The card's features give the order, the bounds and the codes; from them this module builds the
pydantic types of one row (a tuple), of one instance (a closed object keyed by the features) and of a
``/predict`` body, validates in pydantic-core (from the raw JSON bytes), and turns every error
into a :class:`Problem` naming the row, the feature and the reason.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge, Le, MultipleOf
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from online_inference.app.errors import InvalidInput, PayloadTooLarge, Problem
from online_inference.app.dataplane.rules import FastPath
from online_inference.card import Feature, ModelCard, legend

JSON_TYPE_NAMES = {bool: "boolean", str: "string", type(None): "null", list: "array", dict: "object"}
BOUND_ERRORS = {"greater_than_equal", "less_than_equal", "multiple_of"}


def exactly_integral(value: float) -> float:
    """pydantic's ``multiple_of`` tolerates a float error (it accepts 2.9999999999 as a multiple of
    1); a code must be an integer exactly."""
    if not value.is_integer():
        raise PydanticCustomError("multiple_of", "not an integer")
    return value


def value_type(feature: Feature) -> Any:
    """A strict finite JSON number within the feature's bounds (an integral code if it has codes)."""
    constraints: list[Any] = [Strict(), AllowInfNan(False), Ge(feature.bounds.min), Le(feature.bounds.max)]
    if feature.is_integral:
        constraints += [MultipleOf(1), AfterValidator(exactly_integral)]  # the schema says it, the validator holds it
    return Annotated[float, *constraints]


def meaning(feature: Feature) -> str:
    """The feature as the card describes it: meaning, unit, codes."""
    unit = f" ({feature.unit})" if feature.unit else ""
    codes = "; codes: " + legend(feature.codes) if feature.codes else ""
    return f"{feature.description}{unit}{codes}"


def build_row_type(card: ModelCard) -> Any:
    return tuple[tuple(value_type(f) for f in card.features)]  # type: ignore[misc]


def build_instance_type(card: ModelCard) -> Any:
    instance = TypedDict("Instance", {f.name: Annotated[value_type(f), Field(description=meaning(f))] for f in card.features})  # type: ignore[misc]
    instance.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return instance


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


class InputSchema:
    """Validation of one model's inputs, built once per loaded card."""

    def __init__(self, card: ModelCard, fast: FastPath):
        """``fast`` is the vectorised check of the same card (tried first); its ``max_rows`` holds here too."""
        self.card = card
        self.names = card.feature_names
        self.max_rows = max_rows = fast.max_rows  # one bound, the fast path's
        self.request_adapter = TypeAdapter(build_request_model(card, max_rows))
        self.request_json_schema = build_request_json_schema(card, max_rows)
        self.fast = fast
        self.rows_adapter = TypeAdapter(list[build_row_type(card)])  # type: ignore[misc]
        self.by_name = {f.name: f for f in card.features}

    def parse_predict_body(self, body: bytes) -> np.ndarray:
        """Raw ``/predict`` JSON → float32 ``[N, features]``; InvalidInput / PayloadTooLarge otherwise."""
        self.check_value_count(body)
        X = self.fast.parse(body)
        return X if X is not None else self.parse_fully(body)

    def check_value_count(self, body: bytes) -> None:
        """PayloadTooLarge for a body of more values than ``max_rows`` rows need, before a parser
        builds them (what a request may hold is bounded by it: :mod:`admission`)."""
        if self.fast.too_many_values(body):
            raise PayloadTooLarge(f"more JSON values than {self.max_rows} rows need (at most {self.fast.values_limit})")

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

    def parse_rows(self, rows: list[Any], numbers_only: bool) -> np.ndarray:
        """Rows already split from another wire format (V2) → float32 ``[N, features]``. When the
        rows can hold no boolean (``numbers_only``: a tensor's bytes, or JSON without ``true`` or
        ``false``), the fast path checks them first, as whole arrays; pydantic explains the rest."""
        if len(rows) > self.max_rows:
            raise PayloadTooLarge(f"at most {self.max_rows} rows per request, got {len(rows)}")
        X = self.fast.check(rows) if numbers_only else None  # (see fastpath.may_hold_booleans)
        if X is not None:
            return X
        try:
            return np.array(self.rows_adapter.validate_python(rows), dtype=np.float32)
        except ValidationError as error:
            raise InvalidInput("invalid input", [self.describe(e, ("data", *e["loc"])) for e in error.errors()]) from None

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
        return InvalidInput("invalid input", [self.describe(d, d["loc"]) for d in details])

    def describe(self, detail: ErrorDetails, loc: tuple[Any, ...]) -> Problem:
        """One pydantic error → a Problem naming row, feature and reason."""
        kind, value = detail["type"], detail.get("input")
        row = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        feature: str | None = None
        if len(loc) > 2:
            feature = self.names[loc[2]] if isinstance(loc[2], int) else str(loc[2])
        elif len(loc) == 1 and kind == "extra_forbidden":
            return Problem(reason=f"unknown key {loc[0]!r}: use 'features' and 'data', or 'instances'")
        return Problem(reason=self.explain(kind, detail["msg"], value, feature, loc), row=row, feature=feature)

    def explain(self, kind: str, msg: str, value: Any, feature: str | None, loc: tuple[Any, ...]) -> str:
        spec = self.by_name.get(feature) if feature else None
        if kind == "extra_forbidden":
            return f"unknown feature; expected exactly {self.names}"
        row_length = kind in ("too_long", "too_short") and len(loc) == 2
        if row_length or (kind == "missing" and loc[0] == "data"):
            got = f", got {len(value)}" if isinstance(value, (list, tuple)) else ""
            return f"a row needs exactly {len(self.names)} values in the order {self.names}{got}"
        if kind == "missing":
            return "missing feature"
        if kind == "too_short" and len(loc) == 1:
            return "empty batch: give at least one row"
        if spec and kind == "float_type" and type(value) is int:
            return self.out_of_bounds(spec, "an integer too large for a float64")
        if kind in ("float_type", "float_parsing", "tuple_type", "list_type", "dict_type", "model_type"):
            got = JSON_TYPE_NAMES.get(type(value), type(value).__name__)
            wanted = "a number" if spec else ("an array" if kind in ("tuple_type", "list_type") else "an object")
            return f"must be {wanted}, got {got}"
        if kind == "finite_number":
            return "must be a finite number (no NaN or Infinity)"
        if spec and kind in BOUND_ERRORS:
            return self.out_of_bounds(spec, repr(value))
        if kind == "value_error":
            return msg.removeprefix("Value error, ")
        return msg

    @staticmethod
    def out_of_bounds(spec: Feature, value: str) -> str:
        if spec.codes:
            return f"{value} is not one of the codes {sorted(spec.codes)}"
        return f"{value} is outside the plausible range [{spec.bounds.min:g}, {spec.bounds.max:g}]"
