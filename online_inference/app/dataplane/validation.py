"""Every problem of rows that break the card's rules, found and explained (pydantic): the types of one row
(a tuple) and of one instance (a closed object keyed by the features), generated from the card's
features (order, bounds, codes), and every validation error turned into a :class:`Problem`
naming the row, the feature and the reason. The protocols' body models build on these types.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from annotated_types import Ge, Le, MultipleOf
from pydantic import AfterValidator, AllowInfNan, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from online_inference.app.errors import InvalidInput, Problem
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


class Validator:
    """The explanations of one card's rules, built once per loaded card."""

    def __init__(self, card: ModelCard):
        self.names = card.feature_names
        self.rows_adapter = TypeAdapter(list[build_row_type(card)])  # type: ignore[misc]
        self.by_name = {f.name: f for f in card.features}

    def matrix(self, rows: list[Any]) -> np.ndarray:
        """float32 ``[N, features]`` of the rows (split from a protocol's wire format) if pydantic
        accepts them; InvalidInput with every problem, by row and feature, otherwise."""
        try:
            return np.array(self.rows_adapter.validate_python(rows), dtype=np.float32)
        except ValidationError as error:
            raise InvalidInput("invalid input", [self.describe(e, ("data", *e["loc"])) for e in error.errors()]) from None

    def describe(self, detail: ErrorDetails, loc: tuple[Any, ...]) -> Problem:
        """One pydantic error → a Problem naming row, feature and reason."""
        kind, value = detail["type"], detail.get("input")
        row = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        feature: str | None = None
        if len(loc) > 2:
            feature = self.names[loc[2]] if isinstance(loc[2], int) else str(loc[2])
        elif len(loc) == 1 and kind == "extra_forbidden":
            return Problem(reason=f"unknown key {loc[0]!r}: use 'features' and 'data', or 'instances'")
        return Problem(reason=self.reason_for(kind, detail["msg"], value, feature, loc), row=row, feature=feature)

    def reason_for(self, kind: str, msg: str, value: Any, feature: str | None, loc: tuple[Any, ...]) -> str:
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
