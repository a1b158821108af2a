"""The ``/predict`` answer's bytes, written once for both its paths (the hot path and the route):
one object per row, in request order, then the model's name and version."""

from __future__ import annotations

import functools

import numpy as np
import orjson

from online_inference.app.dataplane.plane import Served
from online_inference.app.model.session import Prediction

ROW_END = b',"warnings":[]},'  # a row without warnings, and the comma before the next
ANSWER_HEAD = b'{"predictions":['



def answer_bytes(served: Served, X: np.ndarray, prediction: Prediction) -> bytes:
    """The ``/predict`` answer: one object per row, in request order, then the model's name and
    version. The rows are byte fragments — each row's start (the target's name and the row's
    class), its probability (all written in one call: :func:`probability_texts`) and its end (the
    warnings) — joined once between the answer's head and tail."""
    card = served.card
    labels = prediction.labels.tolist()
    starts = row_starts(card.target, *card.classes)
    parts = [ROW_END] * (3 * len(labels) + 2)  # the head, each row's start, probability and end, the tail
    parts[0] = ANSWER_HEAD
    parts[1:-1:3] = [starts[label] for label in labels]
    parts[2:-1:3] = probability_texts(prediction.positive)
    for row, warnings in served.rules.warnings_by_row(X).items():
        parts[3 * row + 3] = b',"warnings":' + orjson.dumps(warnings) + b"},"
    parts[-2] = parts[-2].removesuffix(b",")  # the last row ends the array
    parts[-1] = answer_tail(card.name, card.version)
    return b"".join(parts)


def probability_texts(positive: np.ndarray) -> list[bytes]:
    """Each of the model's float32 probabilities as an answer writes it: the shortest decimal that
    reads back as that float32 (orjson's float32 format; at most 9 significant digits). Nothing is
    rounded away, so an answer says 0 or 1 only when the model's value is exactly 0 or 1 (6
    significant digits would make 1 of every float32 from 0.9999995 up), and reading it back as a
    float32 gives V2's bits. One call for the whole batch, whatever its size."""
    return orjson.dumps(np.ascontiguousarray(positive), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


@functools.cache
def row_starts(target: str, *classes: int) -> dict[int, bytes]:
    """What a row's object starts with, by its class: ``{"<target>":<class>,"probability":``."""
    return {label: b"{" + orjson.dumps(target) + b":" + orjson.dumps(label) + b',"probability":' for label in classes}


@functools.cache
def answer_tail(name: str, version: str) -> bytes:
    """What follows the rows: the model's name and version."""
    return b'],"model":' + orjson.dumps({"name": name, "version": version}) + b"}"
