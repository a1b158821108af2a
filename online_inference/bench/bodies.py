"""Request bodies made from a model card: random valid rows in each of the service's forms
(``/predict``'s data and instances forms, V2 JSON and binary), a row spoiled, a body padded with
JSON's whitespace. The measurements (:mod:`memory`) and the crowd (:mod:`crowd`) send them."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from online_inference.card import ModelCard

MAX_BODY = 8 * 1024 * 1024  # the settings' default MAX_BODY_BYTES
PADDED_BYTES = MAX_BODY - 4096  # a padded body: just under the limit


def random_rows(model: ModelCard, rows: int, rng: np.random.Generator, within: str = "bounds") -> list[list[float | int]]:
    """Valid rows: codes as integers, other values uniform within the bounds (or the training range)."""
    columns: list[list[Any]] = []
    for f in model.features:
        if f.is_integral:
            columns.append(rng.integers(int(f.bounds.min), int(f.bounds.max) + 1, rows).tolist())
        else:
            span = f.bounds if within == "bounds" else f.training
            columns.append(rng.uniform(span.min, span.max, rows).tolist())
    return [list(row) for row in zip(*columns)]


def spoil_last_row(model: ModelCard, rows: list[list[float | int]]) -> list[list[float | int]]:
    """The same rows, the first value of the last one out of its feature's bounds."""
    last = [model.features[0].bounds.max + 1.5, *rows[-1][1:]]
    return [*rows[:-1], last]


def data_body(model: ModelCard, rows: list[list[float | int]]) -> bytes:
    return orjson.dumps({"features": model.feature_names, "data": rows})


def instances_body(model: ModelCard, rows: list[list[float | int]]) -> bytes:
    return orjson.dumps({"instances": [dict(zip(model.feature_names, row)) for row in rows]})


def v2_json_body(model: ModelCard, rows: list[list[float | int]], nested: bool = True) -> bytes:
    data: list[Any] = rows if nested else [value for row in rows for value in row]
    tensor = {"name": model.input_name, "shape": [len(rows), len(model.features)], "datatype": "FP32", "data": data}
    return orjson.dumps({"inputs": [tensor]})


def v2_binary_body(model: ModelCard, rows: list[list[float | int]]) -> tuple[bytes, int]:
    """The JSON head and the FP32 tensor after it, and the head's length (the header's value)."""
    tensor = np.array(rows, dtype="<f4").tobytes()
    head = orjson.dumps({"inputs": [{"name": model.input_name, "shape": [len(rows), len(model.features)], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(tensor)}}]})
    return head + tensor, len(head)


def padded(body: bytes, size: int = PADDED_BYTES) -> bytes:
    """``body`` with spaces after each comma (and the rest at its end), ``size`` bytes in all."""
    commas = body.count(b",")
    spread = body.replace(b",", b"," + b" " * ((size - len(body)) // commas))
    return spread + b" " * (size - len(spread))
