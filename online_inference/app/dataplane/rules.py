"""The vectorised fast path of ``/predict`` validation, for the common case: a well-formed body;
and the training-range warnings of accepted rows. numpy only: no validation framework.

It accepts a body only if every rule of the pydantic path holds, checked on whole arrays built
from the card (bounds, integral codes, finiteness), and otherwise returns None so that the
pydantic path (:mod:`schema`) runs and explains every problem. It never accepts what the
pydantic path refuses:

- a strict JSON parser reads the body (no NaN/Infinity literals, no byte-order mark; integers
  past 64 bits fail → full path);
- exactly the keys of one form, none repeated, ``features`` equal to the model's order;
- every row has exactly one value per feature, each a number (not a boolean, string, null, array or
  object), finite and within the feature's bounds, integral for codes.

Two parsers, by size. orjson reads small bodies (either form) into Python objects; there no
``true``/``false`` literal may appear (booleans are not numbers), and the number of ``"`` bytes
must be exactly what the keys and names need, so no value is a string and no key is repeated.
simdjson reads larger ``features`` + ``data`` bodies, the form for batches, and hands the values
over as one buffer of doubles: no Python object per value (docs/ARCHITECTURE.md compares the two
by size). The buffer refuses any value that is not a
number; it would hide a row that nests an array, so the ``[`` bytes are counted: only the
feature list, the data and its rows may open one.

Batches of up to ``SMALL_BATCH`` rows are checked, and their training-range warnings found, value
by value in Python (numpy's per-call cost would be most of the work); larger ones as whole
arrays. Both ways apply the same rules (tests hold them to the same answers).
"""

from __future__ import annotations

import re
import struct
import threading
from itertools import chain
from operator import itemgetter

import numpy as np
import orjson
import simdjson

from online_inference.card import ModelCard

SMALL_BATCH = 4  # up to this many rows, checking in Python beats numpy's per-call cost
BOM = b"\xef\xbb\xbf"  # simdjson skips a leading byte-order mark; JSON (and the full path) refuse it
# From this size simdjson reads a features + data body faster than orjson, between calls of the
# model as a server runs them (in a tight loop it wins sooner: docs/ARCHITECTURE.md).
BUFFER_FROM_BYTES = 2048
# The instances form's one key opens its body; any other large body is read as the data form.
# (A body sent the wrong way only takes the full path, which explains it.)
INSTANCES_FORM = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"instances"')
# A simdjson parser keeps its buffers, sized to the largest body it has read (several times its
# bytes): a new parser allocates, and the kernel zeroes, fresh ones for every body. So one parser
# is kept and reused for bodies up to this size; a larger
# body, or one read while the kept parser is busy (the full application parses in threads), gets
# a parser of its own.
KEPT_PARSER_BYTES = 256 * 1024


def max_values(max_rows: int, features: int) -> int:
    """The most JSON values a request within ``MAX_BATCH_ROWS`` can need: a value per feature and
    a container per row, the feature names, and the body's own keys and parameters."""
    return max_rows * (features + 1) + features + 64


def may_hold_booleans(body: bytes) -> bool:
    """Whether a JSON ``body`` may hold ``true`` or ``false`` (or a string that spells one): the
    checks of whole arrays would take a boolean for a number (it is an int), so such a body is
    left to the full path."""
    return b"true" in body or b"false" in body


def value_count_bound(body: bytes) -> int:
    """At least the number of JSON values in ``body`` (a container's n >= 1 items need n - 1
    commas): counted at memchr speed, before any parser makes an object of them."""
    return body.count(b",") + body.count(b"[") + body.count(b"{") + 1


class FastPath:
    def __init__(self, card: ModelCard, max_rows: int):
        self.names = card.feature_names
        self.width = len(self.names)
        self.name_set = set(self.names)
        self.max_rows = max_rows
        self.values_limit = max_values(max_rows, self.width)
        self.low = np.array([f.bounds.min for f in card.features], dtype=np.float64)
        self.high = np.array([f.bounds.max for f in card.features], dtype=np.float64)
        self.integral = np.array([f.is_integral for f in card.features])
        self.limits = list(zip(self.low.tolist(), self.high.tolist(), self.integral.tolist()))
        self.pick = itemgetter(*self.names)
        self.row_quotes = 2 * self.width  # per instance object
        self.rows_quotes = 4 + 2 * self.width  # "features", "data" and the names
        self.fixed_brackets = 2 + sum(name.count("[") for name in self.names)  # "features", "data" (and names)
        self.features = card.features
        self.train_min = np.array([f.training.min for f in card.features], dtype=np.float32)
        self.train_max = np.array([f.training.max for f in card.features], dtype=np.float32)
        self.training = list(zip(self.train_min.tolist(), self.train_max.tolist()))
        self.kept_parser = simdjson.Parser()
        self.kept_parser_busy = threading.Lock()

    def parse(self, body: bytes) -> np.ndarray | None:
        """float32 ``[N, features]`` when the body is valid in every respect; None to take the full path."""
        if self.too_many_values(body):
            return None
        if len(body) >= BUFFER_FROM_BYTES and not INSTANCES_FORM.match(body):
            return self.parse_to_buffer(body)
        return self.parse_to_objects(body)

    def too_many_values(self, body: bytes) -> bool:
        """Whether ``body`` may hold more values than a request of ``max_rows`` rows can need
        (only a body of more than twice that many bytes can)."""
        return len(body) // 2 >= self.values_limit and value_count_bound(body) > self.values_limit

    def parse_to_buffer(self, body: bytes) -> np.ndarray | None:
        """The ``features`` + ``data`` form by simdjson: by the kept parser if it is free and the
        body small enough (:data:`KEPT_PARSER_BYTES`), else by a parser of its own."""
        if body.startswith(BOM):
            return None
        if len(body) <= KEPT_PARSER_BYTES and self.kept_parser_busy.acquire(blocking=False):
            try:
                return self.read_buffer(self.kept_parser, body)
            finally:
                self.kept_parser_busy.release()
        return self.read_buffer(simdjson.Parser(), body)

    def read_buffer(self, parser: simdjson.Parser, body: bytes) -> np.ndarray | None:
        """``body`` read by ``parser``, whose buffer of the values refuses any that is not a number
        (booleans, strings, null...): only nested arrays need a count. No object of the document
        outlives the call (a parser refuses to read again while one does): the values are copied."""
        try:
            request = parser.parse(body)
            if type(request) is not simdjson.Object or sorted(request.keys()) != ["data", "features"]:
                return None  # another key, or one repeated (simdjson lists each occurrence)
            rows = request["data"]
            if type(rows) is not simdjson.Array or not 1 <= len(rows) <= self.max_rows:
                return None
            if request["features"].as_list() != self.names or set(map(len, rows)) != {self.width}:
                return None
            if self.count_brackets(body) != self.fixed_brackets + len(rows):
                return None  # a row nests an array (which the flat buffer would hide), or a string holds a "["
            X = np.frombuffer(rows.as_buffer(of_type="d"), np.float64).reshape(len(rows), self.width)
        except (ValueError, TypeError, RuntimeError, KeyError, AttributeError):  # not JSON, a value not a number...
            return None
        return self.check_matrix(X)

    @staticmethod
    def count_brackets(body: bytes) -> int:
        """The ``[`` bytes of ``body`` (numpy counts them faster than ``bytes.count``)."""
        return int(np.count_nonzero(np.frombuffer(body, np.uint8) == ord("[")))

    def parse_to_objects(self, body: bytes) -> np.ndarray | None:
        """Either form by orjson, as Python objects."""
        if may_hold_booleans(body):
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
        """float32 ``[N, features]`` if every row holds a number per feature within the bounds (integral codes)."""
        if len(rows) <= SMALL_BATCH:
            return self.check_values(rows)
        return self.check_array(rows)

    def check_values(self, rows: list) -> np.ndarray | None:  # type: ignore[type-arg]
        try:
            for row in rows:
                if len(row) != self.width:
                    return None
                for value, (low, high, integral) in zip(row, self.limits):
                    # NaN fails the comparison, so "inside the bounds" also means finite.
                    if type(value) not in (int, float) or not low <= value <= high or (integral and value != int(value)):
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
        for row, values in enumerate(X.tolist()):  # float32 values, compared with float32 ranges
            for column, (value, (low, high)) in enumerate(zip(values, self.training)):
                if value < low or value > high:
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
