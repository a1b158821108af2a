"""The cases ``make memory`` measures (:mod:`memory`): each route, body form and parser, at
sizes up to ``MAX_BATCH_ROWS`` rows and padded to ``MAX_BODY_BYTES``, with the bodies written to
files for the children that measure them (:mod:`memory_child`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from online_inference.app.settings import BUNDLED_MODEL
from online_inference.bench.bodies import (PADDED_BYTES, data_body, instances_body, padded, random_rows, spoil_last_row, v2_binary_body,
                                           v2_json_body)
from online_inference.app.model.session import ModelSession
from online_inference.card import ModelCard

CHUNK_BYTES = 64 * 1024  # what uvicorn hands over per receive() of a large body (its high-water mark)
WARMUPS = 2
MAX_ROWS = 10_000  # the settings' defaults: MAX_BATCH_ROWS
PREDICT = "/predict"
V2_BINARY_MEDIA = "application/octet-stream"



# --- bodies ---------------------------------------------------------------------------------------


def card() -> ModelCard:
    return ModelSession(BUNDLED_MODEL.read_bytes()).card


def v2_path(model: ModelCard) -> str:
    return f"/v2/models/{model.name}/infer"


# --- cases ----------------------------------------------------------------------------------------


@dataclass
class Case:
    """One request to measure, and what it is."""

    budget_route: str  # what the budget charges by: route and outcome
    path: str
    form: str
    parser: str
    valid: bool
    rows: int
    padded: bool
    body_file: str
    body_bytes: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    values: str = "bounds"  # where the numeric values were drawn: bounds or training range

    @property
    def label(self) -> str:
        pad = " padded" if self.padded else ""
        values = "" if self.values == "bounds" else f" ({self.values} values)"
        return f"{self.budget_route} {self.form}{pad} {self.rows} rows{values}"


HOT = "orjson"
PREDICT_INVALID = "fast path ×2 (hot path, route) + json (duplicate keys) + pydantic validate_json"
V2_JSON = "pydantic (V2 request) + pydantic (rows)"
V2_BINARY = "pydantic (V2 head) + numpy → Python floats + pydantic (rows)"


def fast_parser(form: str, body_bytes: int) -> str:
    """Which reader the fast path uses for a body (fastpath.py): simdjson for a large data form."""
    if form == "data" and body_bytes >= 2048:
        return "simdjson (a fresh parser)" if body_bytes > 256 * 1024 else "simdjson (the kept parser)"
    return HOT


class Bodies:
    """Writes each body to a file for the children, and describes it as a Case."""

    def __init__(self, directory: Path, model: ModelCard):
        self.directory = directory
        self.model = model
        self.count = 0

    def write(self, body: bytes) -> str:
        self.count += 1
        path = self.directory / f"body-{self.count}.bin"
        path.write_bytes(body)
        return str(path)

    def predict(self, form: str, rows: list[list[float | int]], valid: bool, pad: bool, values: str = "bounds") -> Case:
        encode = data_body if form == "data" else instances_body
        body = encode(self.model, rows if valid else spoil_last_row(self.model, rows))
        body = padded(body) if pad else body
        parser = fast_parser(form, len(body)) if valid else PREDICT_INVALID
        route = "POST /predict valid" if valid else "POST /predict invalid"
        path = "hot path" if valid else "FastAPI route"
        return Case(route, path, form, parser, valid, len(rows), pad, self.write(body), len(body),
                    [("content-type", "application/json")], values)

    def v2_json(self, rows: list[list[float | int]], valid: bool, nested: bool, pad: bool) -> Case:
        body = v2_json_body(self.model, rows if valid else spoil_last_row(self.model, rows), nested)
        body = padded(body) if pad else body
        route = "POST v2 infer JSON " + ("valid" if valid else "invalid")
        return Case(route, "FastAPI route", "nested data" if nested else "flat data", V2_JSON, valid, len(rows), pad,
                    self.write(body), len(body), [("content-type", "application/json")])

    def over_the_row_limit(self, form: str) -> Case:
        """A body of real values, short ones (the card's example row), as many rows as fit in
        PADDED_BYTES: far more than MAX_BATCH_ROWS, refused (413) only once it is parsed."""
        example = [f.example for f in self.model.features]
        row = [int(v) if f.is_integral else v for v, f in zip(example, self.model.features)]
        encode: Callable[[list[list[float | int]]], bytes] = {
            "data": lambda rows: data_body(self.model, rows),
            "instances": lambda rows: instances_body(self.model, rows),
            "v2 flat": lambda rows: v2_json_body(self.model, rows, nested=False),
        }[form]
        per_row = len(encode([row] * 1000)) / 1000
        rows = [row] * int(PADDED_BYTES / per_row * 0.999)
        body = encode(rows)
        body += b" " * (PADDED_BYTES - len(body))
        if form == "v2 flat":
            return Case("POST v2 infer JSON over the row limit", "FastAPI route", "flat data", V2_JSON, False, len(rows),
                        False, self.write(body), len(body), [("content-type", "application/json")], "example")
        return Case("POST /predict over the row limit", "FastAPI route", form, PREDICT_INVALID, False, len(rows), False,
                    self.write(body), len(body), [("content-type", "application/json")], "example")

    def v2_binary(self, rows: list[list[float | int]], valid: bool) -> Case:
        body, head = v2_binary_body(self.model, rows if valid else spoil_last_row(self.model, rows))
        route = "POST v2 infer binary " + ("valid" if valid else "invalid")
        return Case(route, "FastAPI route", "binary tensor", V2_BINARY, valid, len(rows), False, self.write(body), len(body),
                    [("content-type", V2_BINARY_MEDIA), ("inference-header-content-length", str(head))])


def request_cases(bodies: Bodies, rng: np.random.Generator) -> list[Case]:
    model = bodies.model
    full = random_rows(model, MAX_ROWS, rng)
    tenth = full[: MAX_ROWS // 10]
    cases = []
    for form in ("data", "instances"):
        cases += [bodies.predict(form, full, True, False), bodies.predict(form, full, True, True),
                  bodies.predict(form, tenth, True, False),
                  bodies.predict(form, full, False, False), bodies.predict(form, full, False, True)]
    cases.append(bodies.predict("data", random_rows(model, MAX_ROWS, rng, "training"), True, False, "training"))
    cases += [bodies.v2_json(full, True, True, False), bodies.v2_json(full, True, False, False),
              bodies.v2_json(full, True, True, True), bodies.v2_json(full, False, True, False),
              bodies.v2_json(full, False, True, True)]
    cases += [bodies.v2_binary(full, True), bodies.v2_binary(tenth, True), bodies.v2_binary(full, False)]
    cases += [bodies.over_the_row_limit("data"), bodies.over_the_row_limit("instances"), bodies.over_the_row_limit("v2 flat")]
    return cases


PARSERS = {  # name: what the child calls on the body
    "orjson (fast path: parse_to_objects)": "objects",
    "simdjson (fast path: parse_to_buffer, a fresh parser)": "buffer",
    "json (find_duplicate_keys)": "duplicates",
    "pydantic (full path: validate_json)": "pydantic",
}


def parser_cases(bodies: Bodies, rng: np.random.Generator) -> list[Case]:
    model = bodies.model
    full = random_rows(model, MAX_ROWS, rng)
    cases = []
    for form, encode in (("data", data_body), ("instances", instances_body)):
        over = bodies.over_the_row_limit(form)
        variants = [(encode(model, full), False, MAX_ROWS, "bounds"), (padded(encode(model, full)), True, MAX_ROWS, "bounds"),
                    (Path(over.body_file).read_bytes(), False, over.rows, "example")]
        for body, pad, rows, values in variants:
            path = bodies.write(body)
            for name in PARSERS:
                if form == "instances" and "simdjson" in name:
                    continue  # the fast path never gives it the instances form
                cases.append(Case("parser", "in isolation", form, name, True, rows, pad, path, len(body), values=values))
    for pad in (False, True):
        body = padded(v2_json_body(model, full)) if pad else v2_json_body(model, full)
        cases.append(Case("parser", "in isolation", "V2 nested data", "pydantic (V2 request: parse_request)", True, MAX_ROWS,
                          pad, bodies.write(body), len(body)))
    return cases
