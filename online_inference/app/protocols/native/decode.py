"""``/predict``'s JSON read straight into a matrix, for the common case: a well-formed body. It
returns float32 ``[N, features]`` only if the body is valid in every respect (the card's rules:
:mod:`...dataplane.rules`), and otherwise None, so that the full path (:mod:`.request`) runs and
explains every problem. It never accepts what the full path refuses:

- a strict JSON parser reads the body (no NaN/Infinity literals, no byte-order mark; integers
  past 64 bits fail → full path);
- exactly the keys of one form, none repeated, ``features`` equal to the model's order;
- every row has exactly one value per feature, each a number (not a boolean, string, null, array or
  object).

Two parsers, by size. orjson reads small bodies (either form) into Python objects; there no
boolean may stand for a number (:meth:`...dataplane.rules.CardRules.check_parsed`), and the number
of ``"`` bytes must be exactly what the keys and names need, so no value is a string and no key is
repeated.
simdjson reads larger ``features`` + ``data`` bodies, the form for batches, and hands the values
over as one buffer of doubles: no Python object per value (docs/ARCHITECTURE.md compares the two
by size). The buffer refuses any value that is not a
number; it would hide a row that nests an array, so the ``[`` bytes are counted: only the
feature list, the data and its rows may open one.
"""

from __future__ import annotations

import re
from operator import itemgetter

import numpy as np
import orjson
import simdjson

from online_inference.app.dataplane.rules import CardRules, byte_count

BOM = b"\xef\xbb\xbf"  # simdjson skips a leading byte-order mark; JSON (and the full path) refuse it
# From this size simdjson reads a features + data body faster than orjson, between calls of the
# model as a server runs them (in a tight loop it wins sooner: docs/ARCHITECTURE.md).
BUFFER_FROM_BYTES = 2048
# The instances form's one key opens its body; any other large body is read as the data form.
# (A body sent the wrong way only takes the full path, which explains it.)
INSTANCES_FORM = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"instances"')
# A simdjson parser keeps its buffers, sized to the largest body it has read (several times its
# bytes): a new parser allocates, and the kernel zeroes, fresh ones for every body. So one parser
# is kept and reused for bodies up to this size; a larger body gets a parser of its own.
KEPT_PARSER_BYTES = 256 * 1024



class PredictDecoder:
    def __init__(self, rules: CardRules):
        self.rules = rules
        self.names = rules.names
        self.width = rules.width
        self.max_rows = rules.max_rows
        self.name_set = set(self.names)
        self.pick = itemgetter(*self.names)
        self.row_quotes = 2 * self.width  # per instance object
        self.rows_quotes = 4 + 2 * self.width  # "features", "data" and the names
        self.fixed_brackets = 2 + sum(name.count("[") for name in self.names)  # "features", "data" (and names)
        self.kept_parser = simdjson.Parser()

    def parse(self, body: bytes) -> np.ndarray | None:
        """float32 ``[N, features]`` when the body is valid in every respect; None to take the full path."""
        return None if self.rules.too_many_values(body) else self.read(body)

    def read(self, body: bytes) -> np.ndarray | None:
        """:meth:`parse` of a body already known to hold no more values than ``max_rows`` rows need."""
        if len(body) >= BUFFER_FROM_BYTES and not INSTANCES_FORM.match(body):
            return self.parse_to_buffer(body)
        return self.parse_to_objects(body)

    def parse_to_buffer(self, body: bytes) -> np.ndarray | None:
        """The ``features`` + ``data`` form by simdjson: by the kept parser if the body is small
        enough (:data:`KEPT_PARSER_BYTES`), else by a parser of its own. (Every parse runs on the
        event loop, one at a time: the kept parser is never read by two at once.)"""
        if body.startswith(BOM):
            return None
        return self.read_buffer(self.kept_parser if len(body) <= KEPT_PARSER_BYTES else simdjson.Parser(), body)

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
            if byte_count(body, b"[") != self.fixed_brackets + len(rows):
                return None  # a row nests an array (which the flat buffer would hide), or a string holds a "["
            X = np.frombuffer(rows.as_buffer(of_type="d"), np.float64).reshape(len(rows), self.width)
        except (ValueError, TypeError, RuntimeError, KeyError, AttributeError):  # not JSON, a value not a number...
            return None
        return self.rules.check_matrix(X)

    def parse_to_objects(self, body: bytes) -> np.ndarray | None:
        """Either form by orjson, as Python objects."""
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
            rows = list(map(self.pick, instances))
        else:
            return None
        if type(rows) is not list or not 1 <= len(rows) <= self.max_rows:
            return None
        return self.rules.check_parsed(rows, body)

