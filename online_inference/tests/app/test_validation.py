"""Spec: every kind of bad input answers 400 with a JSON body naming each problem (row, feature,
reason); too much input answers 413; no client input ever produces a 5xx."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from online_inference.app.dataplane.rules import SMALL_BATCH
from online_inference.app.protocols.native.decode import BUFFER_FROM_BYTES
from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_card, loaded, valid_row

CARD = bundled_card()
NAMES = CARD.feature_names
ROW = valid_row(CARD)
BATCH = [ROW] * (BUFFER_FROM_BYTES // len(json.dumps(ROW)) + 1)  # rows enough for the large-body parser


def rows_body(*rows: list[Any]) -> dict[str, Any]:
    return {"features": NAMES, "data": [list(r) for r in rows]}


def with_value(feature: str, value: Any) -> list[Any]:
    row = list(ROW)
    row[NAMES.index(feature)] = value
    return row


def instance(**changes: Any) -> dict[str, Any]:
    return {**dict(zip(NAMES, ROW)), **changes}


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in instance().items() if k != key}


# (case id, raw body, expected (row, feature, reason fragment) in the problems or the error message)
BAD_BODIES: list[tuple[str, str | bytes, tuple[int | None, str | None, str]]] = [
    ("malformed JSON", b'{"features": [', (None, None, "malformed JSON")),
    ("not an object", json.dumps([ROW]), (None, None, "must be an object, got array")),
    ("empty object", json.dumps({}), (None, None, "give either")),
    ("unknown top-level key", json.dumps({**rows_body(ROW), "extra": 1}), (None, None, "unknown key 'extra'")),
    ("both forms", json.dumps({**rows_body(ROW), "instances": [instance()]}), (None, None, "not both")),
    ("features missing", json.dumps({"data": [ROW]}), (None, None, "in this order")),
    ("features reordered", json.dumps({"features": NAMES[::-1], "data": [ROW]}), (None, None, "in this order")),
    ("feature missing from list", json.dumps({"features": NAMES[:-1], "data": [ROW]}), (None, None, "in this order")),
    ("extra feature in list", json.dumps({"features": [*NAMES, "x"], "data": [ROW]}), (None, None, "in this order")),
    ("duplicate feature in list", json.dumps({"features": [*NAMES[:-1], NAMES[0]], "data": [ROW]}), (None, None, "in this order")),
    ("empty batch (rows)", json.dumps(rows_body()), (None, None, "empty batch")),
    ("empty batch (instances)", json.dumps({"instances": []}), (None, None, "empty batch")),
    ("row too short", json.dumps(rows_body(ROW[:-1])), (0, "thal", "exactly 13 values")),
    ("row too long", json.dumps(rows_body([*ROW, 1])), (0, None, "exactly 13 values")),
    ("row not a list", json.dumps(rows_body(ROW) | {"data": [5]}), (0, None, "must be an array")),
    ("string number", json.dumps(rows_body(with_value("age", "63"))), (0, "age", "got string")),
    ("boolean", json.dumps(rows_body(with_value("sex", True))), (0, "sex", "got boolean")),
    ("null", json.dumps(rows_body(with_value("chol", None))), (0, "chol", "got null")),
    ("nested list", json.dumps(rows_body(with_value("chol", [233]))), (0, "chol", "got array")),
    ("nested object", json.dumps(rows_body(with_value("chol", {"v": 1}))), (0, "chol", "got object")),
    ("NaN", json.dumps(rows_body(with_value("age", float("nan")))), (0, "age", "finite number")),
    ("Infinity", json.dumps(rows_body(with_value("age", float("inf")))), (0, "age", "finite number")),
    ("1e309 overflows to infinity", json.dumps(rows_body(ROW)).replace(f"[{ROW[0]}", "[1e309", 1), (0, "age", "finite")),
    ("non-integral code", json.dumps(rows_body(with_value("cp", 1.5))), (0, "cp", "not one of the codes [0, 1, 2, 3]")),
    ("unknown code", json.dumps(rows_body(with_value("thal", 3))), (0, "thal", "not one of the codes [0, 1, 2]")),
    ("negative binary", json.dumps(rows_body(with_value("sex", -1))), (0, "sex", "not one of the codes [0, 1]")),
    ("age below bounds", json.dumps(rows_body(with_value("age", 5))), (0, "age", "outside the plausible range")),
    ("chol above bounds", json.dumps(rows_body(with_value("chol", 5000))), (0, "chol", "outside the plausible range")),
    ("huge integer", json.dumps(rows_body(with_value("trestbps", 10**40))), (0, "trestbps", "outside the plausible range")),
    ("integer too large for a float64", json.dumps(rows_body(with_value("age", 10**4000))),
     (0, "age", "an integer too large for a float64 is outside the plausible range [18, 110]")),
    ("code too large for a float64", json.dumps({"instances": [instance(cp=-(10**400))]}),
     (0, "cp", "an integer too large for a float64 is not one of the codes [0, 1, 2, 3]")),
    ("integer of 5000 digits", json.dumps(rows_body(ROW)).replace(f"[{ROW[0]}", "[" + "9" * 5000, 1),
     (None, None, "a number is out of range")),
    ("near-integer code", json.dumps(rows_body(with_value("cp", 2.9999999999))), (0, "cp", "2.9999999999 is not one of the codes")),
    ("code a float step above an integer", json.dumps(rows_body(with_value("cp", math.nextafter(2, 3)))),
     (0, "cp", "2.0000000000000004 is not one of the codes [0, 1, 2, 3]")),
    ("near-integer binary", json.dumps({"instances": [instance(sex=0.9999999995)]}), (0, "sex", "is not one of the codes [0, 1]")),
    ("near-integer code in a batch", json.dumps(rows_body(*BATCH, with_value("cp", 1.0000000001))),
     (len(BATCH), "cp", "1.0000000001 is not one of the codes")),
    ("second row bad", json.dumps(rows_body(ROW, with_value("oldpeak", 99))), (1, "oldpeak", "outside the plausible range")),
    ("instance missing key", json.dumps({"instances": [without("thal")]}), (0, "thal", "missing feature")),
    ("instance extra key", json.dumps({"instances": [instance(height=180)]}), (0, "height", "unknown feature")),
    ("instance string", json.dumps({"instances": [instance(age="63")]}), (0, "age", "got string")),
    ("instance not an object", json.dumps({"instances": [ROW]}), (0, None, "must be an object")),
    ("instance out of bounds", json.dumps({"instances": [instance(), instance(thalach=400)]}), (1, "thalach", "outside")),
    ("wrong container type", json.dumps({"features": NAMES, "data": {"0": ROW}}), (None, None, "must be an array, got object")),
    ("byte-order mark", b"\xef\xbb\xbf" + json.dumps(rows_body(ROW)).encode(), (None, None, "malformed JSON")),
    ("repeated key", '{"features": %s, "data": [%s], "data": [%s]}' % (json.dumps(NAMES), json.dumps(ROW), json.dumps(ROW)),
     (None, None, "duplicate key 'data'")),
    # Large bodies are read into one flat buffer of numbers (simdjson): each rule again.
    ("byte-order mark on a batch", b"\xef\xbb\xbf" + json.dumps(rows_body(*BATCH)).encode(), (None, None, "malformed JSON")),
    ("repeated key in a batch", '{"features": %s, "data": %s, "data": 5}' % (json.dumps(NAMES), json.dumps(BATCH)),
     (None, None, "duplicate key 'data'")),
    ("rows of 12 and 14 values", json.dumps(rows_body(*BATCH, ROW[:-1], [*ROW, 1])), (len(BATCH), "thal", "exactly 13 values")),
    ("a row's last value moved to the next row", json.dumps(rows_body(*BATCH, ROW[:-1], [ROW[-1], *ROW])),
     (len(BATCH), "thal", "exactly 13 values")),
    ("nested list in a batch", json.dumps(rows_body(*BATCH, with_value("chol", [233]))), (len(BATCH), "chol", "got array")),
    ("boolean in a batch", json.dumps(rows_body(*BATCH, with_value("sex", True))), (len(BATCH), "sex", "got boolean")),
    ("string in a batch", json.dumps(rows_body(*BATCH, with_value("age", "63"))), (len(BATCH), "age", "got string")),
    ("null in a batch", json.dumps(rows_body(*BATCH, with_value("chol", None))), (len(BATCH), "chol", "got null")),
    ("number in place of a row", json.dumps({"features": NAMES, "data": [*BATCH, 5]}), (len(BATCH), None, "must be an array")),
    ("out of bounds in a batch", json.dumps(rows_body(*BATCH, with_value("age", 500))), (len(BATCH), "age", "outside")),
    ("batch with a key too many", json.dumps({**rows_body(*BATCH), "extra": 1}), (None, None, "unknown key 'extra'")),
]


def problems_of(body: dict[str, Any]) -> list[tuple[int | None, str | None, str]]:
    return [(p["row"], p["feature"], p["reason"]) for p in body.get("problems", [])] or [(None, None, body["error"])]


@pytest.mark.parametrize(("case", "raw", "expected"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_input_answers_400_naming_the_problem(client: TestClient, case: str, raw: str | bytes, expected: tuple) -> None:
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    row, feature, fragment = expected
    assert any(
        r == row and f == feature and fragment in reason for r, f, reason in problems_of(body)
    ) or (row is None and feature is None and fragment in body["error"]), body


def test_every_problem_of_a_batch_is_listed(client: TestClient) -> None:
    bad = rows_body(with_value("age", "x"), ROW, with_value("cp", 9), with_value("chol", None))
    problems = problems_of(client.post("/predict", json=bad).json())
    assert {(r, f) for r, f, _ in problems} == {(0, "age"), (2, "cp"), (3, "chol")}


def test_integral_floats_are_valid_codes(client: TestClient) -> None:
    response = client.post("/predict", json=rows_body(with_value("cp", 1.0)))
    assert response.status_code == 200


def test_bounds_are_never_stricter_than_training_data(card: ModelCard) -> None:
    for f in card.features:
        assert f.bounds.min <= f.training.min and f.training.max <= f.bounds.max, f.name
    assert card.features[NAMES.index("chol")].training.max == 564
    assert card.features[NAMES.index("oldpeak")].training.max == 6.2


def test_training_extremes_are_accepted(client: TestClient, card: ModelCard) -> None:
    low = [f.training.min for f in card.features]
    high = [f.training.max for f in card.features]
    assert client.post("/predict", json=rows_body(low, high)).status_code == 200


def test_more_rows_than_max_batch_rows_answers_413(settings, card: ModelCard) -> None:  # type: ignore[no-untyped-def]
    from online_inference.app.compose import create_app
    from online_inference.tests.helpers import bundled_session

    app = create_app(settings.replace(MAX_BATCH_ROWS=3), loader=bundled_session)
    with TestClient(app) as small:
        assert loaded(app.plane, 10)
        assert small.post("/predict", json=rows_body(ROW, ROW, ROW)).status_code == 200
        response = small.post("/predict", json=rows_body(ROW, ROW, ROW, ROW))
        assert response.status_code == 413 and "at most 3 rows" in response.json()["error"]
        assert small.post("/predict", json={"instances": [instance()] * 4}).status_code == 413


def test_body_over_max_body_bytes_answers_413(settings) -> None:  # type: ignore[no-untyped-def]
    from online_inference.app.compose import create_app
    from online_inference.tests.helpers import bundled_session

    app = create_app(settings.replace(MAX_BODY_BYTES=2048), loader=bundled_session)
    with TestClient(app) as small:
        assert loaded(app.plane, 10)
        big = json.dumps(rows_body(*[ROW] * 40))
        assert len(big) > 2048
        response = small.post("/predict", content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413 and "MAX_BODY_BYTES" in response.json()["error"]

        def chunks():  # type: ignore[no-untyped-def]
            yield big[:1500].encode()
            yield big[1500:].encode()

        streamed = small.post("/predict", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


def rules(card: ModelCard) -> Any:
    from online_inference.app.dataplane.rules import CardRules

    return CardRules(card, max_rows=10_000)


def decoder(card: ModelCard) -> Any:
    """/predict's decoder of whole arrays (the fast path)."""
    from online_inference.app.protocols.native.decode import PredictDecoder

    return PredictDecoder(rules(card))


def full_reader(card: ModelCard) -> Any:
    """/predict's reader: the decoder, then pydantic (the full path)."""
    from online_inference.app.dataplane.validation import Validator
    from online_inference.app.protocols.native.request import PredictRequest

    return PredictRequest(card, rules(card), Validator(card))


@pytest.mark.parametrize(("case", "raw", "expected"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_fast_path_never_accepts_what_the_full_path_refuses(case: str, raw: str | bytes, expected: tuple) -> None:
    body = raw.encode() if isinstance(raw, str) else raw
    assert decoder(CARD).parse(body) is None


def test_fast_path_and_full_path_agree_on_valid_bodies(card: ModelCard) -> None:
    schema = full_reader(card)
    low = [f.training.min for f in card.features]
    high = [f.bounds.max for f in card.features]
    for body in (rows_body(ROW, low, high, with_value("cp", 2.0)), {"instances": [instance(), instance(age=18)]}):
        raw = json.dumps(body).encode()
        fast = schema.decoder.parse(raw)
        assert fast is not None
        np.testing.assert_array_equal(fast, schema.parse_fully(raw))


# What a client may put where a number belongs.
WRONG_VALUES: list[Any] = [True, False, "63", "", "[", [1.0], [], {}, {"v": 1}, None]


def random_body(card: ModelCard, rng: random.Random) -> bytes:
    """A body of either form, of valid rows and rows near the edges of validity (``mutated_rows``),
    sometimes with a value of the wrong type or a key too many, serialised one of several ways."""
    rows = [valid_row(card) for _ in range(rng.choice([1, 3, 5, 9, 40]))]
    for _ in range(rng.choice([0, 1, 2])):
        rows[rng.randrange(len(rows))] = mutated_rows(card, rng, 1)[0]
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        row = rng.choice(rows)
        row[rng.randrange(len(row))] = rng.choice(WRONG_VALUES)
    body: dict[str, Any] = {"instances": [dict(zip(NAMES, row)) for row in rows]} if rng.random() < 0.3 else rows_body(*rows)
    if rng.random() < 0.05:
        body["extra"] = 1
    separators = rng.choice([(",", ":"), (", ", ": ")])
    return json.dumps(body, separators=separators, indent=rng.choice([None, None, 1])).encode()


def full_path(schema: Any, raw: bytes) -> np.ndarray | None:
    """What the full (pydantic) path makes of ``raw``: the rows, or None if it refuses them."""
    from online_inference.app.errors import InvalidInput, PayloadTooLarge

    try:
        return schema.parse_fully(raw)  # type: ignore[no-any-return]
    except (InvalidInput, PayloadTooLarge):
        return None


def test_fast_path_accepts_exactly_what_the_full_path_accepts(card: ModelCard) -> None:
    """On random bodies, with the same values: the fast path's speed never costs a rule."""
    schema, rng = full_reader(card), random.Random(6)
    outcomes = {(accepted, large): 0 for accepted in (True, False) for large in (True, False)}
    for _ in range(2000):
        raw = random_body(card, rng)
        fast, full = schema.decoder.parse(raw), full_path(schema, raw)
        assert (fast is None) == (full is None), raw
        if fast is not None:
            np.testing.assert_array_equal(fast, full)
        outcomes[fast is not None, len(raw) >= BUFFER_FROM_BYTES] += 1
    assert min(outcomes.values()) > 100, outcomes  # both outcomes, on small and large bodies (both parsers)


class CountingParser:
    """A simdjson parser that counts the bodies it reads."""

    def __init__(self) -> None:
        import simdjson

        self.parser, self.bodies = simdjson.Parser(), 0

    def parse(self, body: bytes) -> Any:
        self.bodies += 1
        return self.parser.parse(body)


def test_one_parser_is_kept_for_large_bodies_up_to_its_size(card: ModelCard) -> None:
    from online_inference.app.protocols.native.decode import KEPT_PARSER_BYTES

    fast = decoder(card)
    fast.kept_parser = kept = CountingParser()  # type: ignore[assignment]
    batch, huge = rows_body(*BATCH), rows_body(*[ROW] * (KEPT_PARSER_BYTES // len(json.dumps(ROW)) + 1))
    for body, read_by_kept in ((batch, 1), (huge, 1)):  # the huge body by a parser of its own
        parsed = fast.parse(json.dumps(body).encode())
        assert parsed is not None and kept.bodies == read_by_kept
        np.testing.assert_array_equal(parsed, np.array(body["data"], dtype=np.float32))


LARGE_BAD_BODIES = [(case, raw) for case, raw, _ in BAD_BODIES if len(raw) >= BUFFER_FROM_BYTES]


@pytest.mark.parametrize(("case", "raw"), LARGE_BAD_BODIES, ids=[c[0] for c in LARGE_BAD_BODIES])
def test_the_kept_parser_reads_the_next_body_after_refusing_one(case: str, raw: str | bytes, card: ModelCard) -> None:
    """No part of a refused document outlives its reading (the parser would refuse to read again)."""
    fast, valid = decoder(card), json.dumps(rows_body(*BATCH)).encode()
    assert fast.parse(raw.encode() if isinstance(raw, str) else raw) is None
    np.testing.assert_array_equal(fast.parse(valid), np.array(BATCH, dtype=np.float32))


# What can reach the checks: strings and booleans never do (parse() counts quotes and scans for
# the literals first), so neither check has to refuse them.
ODD_VALUES: list[Any] = [None, [], {}, [1.0], float("inf"), float("-inf"), float("nan"), 2**70, -(2**70), 0.5, -0.0, 1e-300,
                         10**400, -(10**400), 10**308]


def near(value: float, rng: random.Random) -> float:
    """A float next to ``value``: the nearest ones, or 1e-10 away (an integral code's near misses)."""
    return rng.choice([math.nextafter(value, math.inf), math.nextafter(value, -math.inf), value + 1e-10, value - 1e-10])


def mutated_rows(card: ModelCard, rng: random.Random, count: int) -> list[list[Any]]:
    """Rows near the edges of validity: bounds, just outside, fractions of codes, odd values,
    a value missing or one too many."""
    rows = []
    for _ in range(count):
        row: list[Any] = valid_row(card)
        for _ in range(rng.randint(0, 2)):
            column = rng.randrange(len(row))
            bounds = card.features[column].bounds
            row[column] = rng.choice([bounds.min, bounds.max, bounds.min - 1e-9, bounds.max + 0.5, bounds.min + 0.5,
                                      int(bounds.max), near(card.features[column].example, rng), rng.choice(ODD_VALUES)])
        if rng.random() < 0.05:
            row = row[:-1] if rng.random() < 0.5 else [*row, 1]
        rows.append(row)
    return rows


def test_the_value_check_and_the_array_check_give_the_same_answers(card: ModelCard) -> None:
    """Small batches are checked value by value, larger ones as arrays: the same rules."""
    fast, rng = rules(card), random.Random(4)
    accepted = 0
    for _ in range(3000):
        rows = mutated_rows(card, rng, rng.choice([1, 1, 2, 3]))
        by_value, by_array = fast.check_values(rows), fast.check_array(rows)
        assert (by_value is None) == (by_array is None), rows
        if by_value is not None:
            np.testing.assert_array_equal(by_value, by_array)
            accepted += 1
    assert 300 < accepted < 2700  # both outcomes were exercised


def test_training_range_warnings_are_the_same_found_by_value_or_by_array(card: ModelCard) -> None:
    fast, rng = rules(card), random.Random(5)
    warned = 0
    for _ in range(2000):
        X = fast.check_array(mutated_rows(card, rng, rng.choice([1, 2, 3])))
        if X is not None:
            by_value, by_array = fast.warnings_of_values(X), fast.warnings_of_array(X)
            assert by_value == by_array, X
            warned += bool(by_value)
    assert warned > 100  # rows outside the training range were exercised


@pytest.mark.parametrize("rows", [1, SMALL_BATCH + 1, 40])  # value by value, as a whole array (orjson), simdjson
@pytest.mark.parametrize("form", ["data", "instances"])
def test_a_boolean_is_not_a_number_at_any_batch_size(client: TestClient, card: ModelCard, rows: int, form: str) -> None:
    coded = next(f.name for f in card.features if f.is_integral and f.bounds.min <= 1 <= f.bounds.max)
    body = rows_body(*[ROW] * (rows - 1), with_value(coded, True)) if form == "data" else \
        {"instances": [instance()] * (rows - 1) + [instance(**{coded: True})]}
    response = client.post("/predict", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["problems"][0]["row"] == rows - 1, response.text
