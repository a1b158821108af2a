"""The card's rules on a matrix of rows, checked as whole arrays (numpy only: no validation
framework), whatever protocol decoded the rows; and the training-range warnings of accepted rows.

A matrix is accepted only if every rule of the full path (:mod:`.validation`, pydantic) holds: one
value per feature, each a finite number within the feature's bounds, integral for codes. Anything
else returns None, and the full path explains every problem. Booleans are the one exception the
arrays cannot see (``True`` is an int): rows that may hold them are left to the full path
(:func:`may_hold_booleans`).

Batches of up to ``SMALL_BATCH`` rows are checked, and their training-range warnings found, value
by value in Python (numpy's per-call cost would be most of the work); larger ones as whole
arrays. Both ways apply the same rules (tests hold them to the same answers).
"""

from __future__ import annotations

import struct
from itertools import chain
from operator import itemgetter, le

import numpy as np

from online_inference.app.errors import PayloadTooLarge
from online_inference.card import ModelCard

SMALL_BATCH = 4  # up to this many rows, checking in Python beats numpy's per-call cost
NUMBERS = frozenset((int, float))  # a JSON number's Python types (a boolean's, bool, is not one)


def max_values(max_rows: int, features: int) -> int:
    """The most JSON values a request within ``MAX_BATCH_ROWS`` can need: a value per feature and
    a container per row, the feature names, and the body's own keys and parameters."""
    return max_rows * (features + 1) + features + 64


def may_hold_booleans(body: bytes) -> bool:
    """Whether a JSON ``body`` may hold ``true`` or ``false`` (or a string that spells one): the
    checks of whole arrays would take a boolean for a number (it is an int), so such a body is
    left to the full path."""
    return b"true" in body or b"false" in body


def byte_count(body: bytes, of: bytes) -> int:
    """How many bytes of ``body`` are one of ``of``'s, by numpy's vectorised compares: on a
    1,000-row body, seven times as fast as ``bytes.count`` (a byte loop, not memchr: 14 µs
    against 110 for three bytes, docs/ARCHITECTURE.md)."""
    octets = np.frombuffer(body, np.uint8)
    return sum(int(np.count_nonzero(octets == byte)) for byte in of)


def value_count_bound(body: bytes) -> int:
    """At least the number of JSON values in ``body`` (a container's n >= 1 items need n - 1
    commas), counted before any parser makes an object of them."""
    return byte_count(body, b",[{") + 1


class CardRules:
    """The rules of one card, with ``max_rows`` (``MAX_BATCH_ROWS``) rows at most per request."""

    def __init__(self, card: ModelCard, max_rows: int):
        self.names = card.feature_names
        self.width = len(self.names)
        self.max_rows = max_rows
        self.values_limit = max_values(max_rows, self.width)
        self.low = np.array([f.bounds.min for f in card.features], dtype=np.float64)
        self.high = np.array([f.bounds.max for f in card.features], dtype=np.float64)
        self.integral = np.array([f.is_integral for f in card.features])
        self.lows, self.highs = self.low.tolist(), self.high.tolist()
        codes = [i for i, integral in enumerate(self.integral.tolist()) if integral]
        self.codes_of = itemgetter(*codes, *codes[:1]) if codes else None  # (twice the first: always a tuple)
        self.features = card.features
        self.train_min = np.array([f.training.min for f in card.features], dtype=np.float32)
        self.train_max = np.array([f.training.max for f in card.features], dtype=np.float32)
        self.train_lows, self.train_highs = self.train_min.tolist(), self.train_max.tolist()

    def too_many_values(self, body: bytes) -> bool:
        """Whether ``body`` may hold more values than a request of ``max_rows`` rows can need
        (only a body of more than twice that many bytes can)."""
        return len(body) // 2 >= self.values_limit and value_count_bound(body) > self.values_limit

    def check_value_count(self, body: bytes) -> None:
        """PayloadTooLarge for a JSON body of more values than ``max_rows`` rows need, before a parser
        builds them (what a request may hold is bounded by it: :mod:`.admission`)."""
        if self.too_many_values(body):
            raise PayloadTooLarge(f"more JSON values than {self.max_rows} rows need (at most {self.values_limit})")

    def check(self, rows: list | np.ndarray) -> np.ndarray | None:  # type: ignore[type-arg]
        """float32 ``[N, features]`` if every row holds a number per feature within the bounds
        (integral codes): Python rows, or a float array's (a tensor's bytes)."""
        if isinstance(rows, np.ndarray):
            return self.check_matrix(rows.astype(np.float64))
        if len(rows) <= SMALL_BATCH:
            return self.check_values(rows)
        return self.check_array(rows)

    def check_parsed(self, rows: list, body: bytes) -> np.ndarray | None:  # type: ignore[type-arg]
        """:meth:`check` of ``rows`` read from the JSON ``body``. Value by value a boolean is
        refused (its type is bool); whole arrays would take it for a number, so a larger batch
        whose body may hold one is left to the full path (the body is scanned only then)."""
        if len(rows) > SMALL_BATCH and may_hold_booleans(body):
            return None
        return self.check(rows)

    def check_values(self, rows: list) -> np.ndarray | None:  # type: ignore[type-arg]
        # Each test runs over a whole row at C speed (map), not value by value in Python.
        try:
            for row in rows:
                if len(row) != self.width or not NUMBERS.issuperset(map(type, row)):
                    return None
                # NaN fails the comparisons, so "inside the bounds" also means finite.
                if not (all(map(le, self.lows, row)) and all(map(le, row, self.highs))):
                    return None
                if self.codes_of is not None and not all(map(float.is_integer, map(float, self.codes_of(row)))):
                    return None
        except (TypeError, ValueError, OverflowError):  # a row that is not an array
            return None
        return np.array(rows, dtype=np.float32)

    def check_array(self, rows: list) -> np.ndarray | None:  # type: ignore[type-arg]
        try:
            if set(map(len, rows)) != {self.width}:
                return None
            # struct packs the values as C doubles in one call (faster than numpy's iteration
            # over Python numbers); like it, it refuses anything that is not a number.
            packed = struct.pack(f"{self.width * len(rows)}d", *chain.from_iterable(rows))
        except (struct.error, TypeError, OverflowError):  # a row that is not an array, a value not a number
            return None
        return self.check_matrix(np.frombuffer(packed, np.float64).reshape(len(rows), self.width))

    def check_matrix(self, X: np.ndarray) -> np.ndarray | None:
        """float32 of the float64 ``[N, features]`` ``X`` if every value is within its bounds (integral codes)."""
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
        if len(X) <= SMALL_BATCH:
            return self.warnings_of_values(X)
        return self.warnings_of_array(X)

    def warnings_of_values(self, X: np.ndarray) -> dict[int, list[str]]:
        warnings: dict[int, list[str]] = {}
        lows, highs = self.train_lows, self.train_highs
        for row, values in enumerate(X.tolist()):  # float32 values, compared with float32 ranges
            if all(map(le, lows, values)) and all(map(le, values, highs)):
                continue  # most rows: inside the training range (tested at C speed)
            for column, value in enumerate(values):
                if value < lows[column] or value > highs[column]:
                    warnings.setdefault(row, []).append(self.warning(column, value))
        return warnings

    def warnings_of_array(self, X: np.ndarray) -> dict[int, list[str]]:
        outside = (X < self.train_min) | (X > self.train_max)
        warnings: dict[int, list[str]] = {}
        if not outside.any():
            return warnings
        for row, column in zip(*np.nonzero(outside)):
            warnings.setdefault(int(row), []).append(self.warning(int(column), float(X[row, column])))
        return warnings

    def warning(self, column: int, value: float) -> str:
        f = self.features[column]
        return f"{f.name}={value:g} is outside the training range [{f.training.min:g}, {f.training.max:g}]"
