"""The vectorised fast path of ``/predict`` validation, for the common case: a well-formed body;
and the training-range warnings of accepted rows. numpy only: no validation framework.

It accepts a body only if every rule of the pydantic path holds, checked on whole arrays built
from the card (bounds, integral codes, finiteness), and otherwise returns None so that the
pydantic path (:mod:`schema`) runs and explains every problem. It never accepts what the
pydantic path refuses:

- orjson parses the body (no NaN/Infinity literals; integers past 64 bits fail → full path);
- exactly the keys of one form, ``features`` equal to the model's order;
- the number of ``"`` bytes is exactly what the keys and feature names need, so no value is a
  string and no key is repeated (a duplicate key adds quotes → full path, which reports it);
- no ``true``/``false`` literal anywhere (booleans are not numbers);
- numpy makes a float64 ``[N, 13]`` array (nesting or ragged rows make it fail or give another
  shape → full path; ``null`` becomes NaN, which fails the bounds; strings, which a float dtype
  would convert, are already excluded by the quote count).
"""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import orjson

from online_inference.card import ModelCard


class FastPath:
    def __init__(self, card: ModelCard, max_rows: int):
        self.names = card.feature_names
        self.name_set = set(self.names)
        self.max_rows = max_rows
        self.low = np.array([f.bounds.min for f in card.features], dtype=np.float64)
        self.high = np.array([f.bounds.max for f in card.features], dtype=np.float64)
        self.integral = np.array([f.is_integral for f in card.features])
        self.pick = itemgetter(*self.names)
        self.row_quotes = 2 * len(self.names)  # per instance object
        self.rows_quotes = 4 + 2 * len(self.names)  # "features", "data" and the names
        self.features = card.features
        self.train_min = np.array([f.training.min for f in card.features], dtype=np.float32)
        self.train_max = np.array([f.training.max for f in card.features], dtype=np.float32)

    def parse(self, body: bytes) -> np.ndarray | None:
        """float32 ``[N, 13]`` when the body is valid in every respect; None to take the full path."""
        if b"true" in body or b"false" in body:
            return None
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(request) is not dict:
            return None
        quotes = body.count(b'"')
        if request.keys() == {"features", "data"}:
            if request["features"] != self.names or quotes != self.rows_quotes:
                return None
            rows = request["data"]
        elif request.keys() == {"instances"}:
            instances = request["instances"]
            if type(instances) is not list or quotes != 2 + self.row_quotes * len(instances):
                return None
            if not all(type(i) is dict and i.keys() == self.name_set for i in instances):
                return None
            rows = [self.pick(i) for i in instances]
        else:
            return None
        if type(rows) is not list or not 1 <= len(rows) <= self.max_rows:
            return None
        return self.check(rows)

    def check(self, rows: list) -> np.ndarray | None:  # type: ignore[type-arg]
        try:
            X = np.array(rows, dtype=np.float64)  # a given dtype halves the conversion's cost
        except (ValueError, TypeError, OverflowError):
            return None
        if X.ndim != 2 or X.shape[1] != len(self.names):
            return None
        # NaN fails both comparisons, so "inside the bounds" also means finite.
        inside = (X >= self.low) & (X <= self.high)
        if not inside.all():
            return None
        codes = X[:, self.integral]
        if (codes != np.floor(codes)).any():
            return None  # codes are every integer within the bounds (the card guarantees it)
        return X.astype(np.float32)

    def warnings_by_row(self, X: np.ndarray) -> dict[int, list[str]]:
        """The rows with values inside the bounds but outside the training range, and those values."""
        outside = (X < self.train_min) | (X > self.train_max)
        warnings: dict[int, list[str]] = {}
        if not outside.any():
            return warnings
        for row, column in zip(*np.nonzero(outside)):
            f = self.features[column]
            warnings.setdefault(int(row), []).append(
                f"{f.name}={float(X[row, column]):g} is outside the training range "
                f"[{f.training.min:g}, {f.training.max:g}]"
            )
        return warnings
