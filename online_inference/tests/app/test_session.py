"""Spec: a single row is answered through the session's bound lane exactly as a plain run answers
it; every answer is the caller's own; rows from several threads at once, or while the lane is
busy, take the plain run and get the same answers."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from online_inference.app.session import ModelSession, Prediction
from online_inference.tests.helpers import bundled_session, valid_row


def plain_run(session: ModelSession, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, probabilities = session.run(session.outputs, {session.card.input_name: X}, None)
    return labels, probabilities


def random_rows(session: ModelSession, count: int, seed: int) -> list[np.ndarray]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        row = valid_row(session.card)
        for column, feature in enumerate(session.card.features):
            row[column] = rng.randint(int(feature.bounds.min), int(feature.bounds.max)) if feature.is_integral else rng.uniform(feature.bounds.min, feature.bounds.max)
        rows.append(np.array([row], dtype=np.float32))
    return rows


def assert_answers(prediction: Prediction, expected: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(prediction.labels, expected[0])
    np.testing.assert_array_equal(prediction.probabilities, expected[1])


def test_one_row_is_answered_through_the_lane_as_a_plain_run_answers_it() -> None:
    session = bundled_session()
    rows = random_rows(session, 300, seed=1)
    predictions = [session.predict(X) for X in rows]  # each kept while the next are made
    for X, prediction in zip(rows, predictions):
        assert_answers(prediction, plain_run(session, X))
    assert {int(p.labels[0]) for p in predictions} == {0, 1}


def test_a_row_finding_the_lane_busy_takes_the_plain_run() -> None:
    session = bundled_session()
    X = random_rows(session, 1, seed=2)[0]
    with session.one_row.busy:  # another thread is in the lane
        assert session.one_row.predict(X) is None
        assert_answers(session.predict(X), plain_run(session, X))


def test_rows_from_several_threads_at_once_each_get_their_own_answer() -> None:
    session = bundled_session()
    rows = random_rows(session, 400, seed=3)
    expected = [plain_run(session, X) for X in rows]
    with ThreadPoolExecutor(4) as pool:
        for prediction, answer in zip(pool.map(session.predict, rows), expected):
            assert_answers(prediction, answer)
