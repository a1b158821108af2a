"""Spec: a patient's answer does not depend on the batch. The label and probability of a row are
the same alone, at any place in a batch of any size, shared in one model call with other clients'
rows, in either body form, and through V2 (whose probabilities are float32, compared bit for bit,
and are /predict's read as float32), on thousands of random valid rows, against the server as it
runs."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from online_inference.card import ModelCard
from online_inference.tests.helpers import live_server, metric_value

ROWS = 3000
Answer = tuple[int, float]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with live_server() as base:
        yield base


@pytest.fixture(scope="module")
def rows(card: ModelCard) -> list[list[float]]:
    rng = random.Random(20)
    return [[float(rng.choice(sorted(f.codes))) if f.codes else rng.uniform(f.bounds.min, f.bounds.max) for f in card.features]
            for _ in range(ROWS)]


@pytest.fixture(scope="module")
def alone(url: str, rows: list[list[float]], card: ModelCard) -> list[Answer]:
    with httpx.Client(base_url=url) as client:
        return [predict(client, card, [row])[0] for row in rows]


def predict(client: httpx.Client, card: ModelCard, rows: list[list[float]], form: str = "data") -> list[Answer]:
    names = [f.name for f in card.features]
    body = ({"features": names, "data": rows} if form == "data"
            else {"instances": [dict(zip(names, row)) for row in rows]})
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return [(p["condition"], p["probability"]) for p in response.json()["predictions"]]


def v2_infer(client: httpx.Client, card: ModelCard, rows: list[list[float]]) -> tuple[list[int], list[list[float]]]:
    body = {"inputs": [{"name": card.input_name, "shape": [len(rows), len(card.features)], "datatype": "FP32",
                        "data": [value for row in rows for value in row]}]}
    response = client.post(f"/v2/models/{card.name}/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    probabilities = outputs[card.probability_output]["data"]
    return outputs[card.label_output]["data"], [probabilities[i:i + 2] for i in range(0, len(probabilities), 2)]


def random_batches(count: int, rng: random.Random, largest: int = 300) -> Iterator[list[int]]:
    """Every index once, in a random order, cut into batches of random sizes."""
    order = list(range(count))
    rng.shuffle(order)
    while order:
        size = rng.randint(2, largest)
        yield order[:size]
        order = order[size:]


@pytest.mark.parametrize("form", ["data", "instances"])
def test_each_row_answers_in_any_batch_at_any_place_as_it_does_alone(
        url: str, rows: list[list[float]], alone: list[Answer], card: ModelCard, form: str) -> None:
    rng = random.Random(form)
    with httpx.Client(base_url=url) as client:
        for batch in random_batches(len(rows), rng):
            answers = predict(client, card, [rows[i] for i in batch], form)
            assert answers == [alone[i] for i in batch]


def test_rows_shared_in_one_model_call_with_other_clients_answer_as_they_do_alone(
        url: str, rows: list[list[float]], alone: list[Answer], card: ModelCard) -> None:
    clients = 16

    def send(start: int) -> list[tuple[int, Answer]]:
        with httpx.Client(base_url=url) as client:
            return [(i, predict(client, card, [rows[i]])[0]) for i in range(start, len(rows), clients)]

    calls_before = metric_value(url, "inference_duration_seconds_count")
    with ThreadPoolExecutor(clients) as pool:
        answers = [answer for part in pool.map(send, range(clients)) for answer in part]
    calls = metric_value(url, "inference_duration_seconds_count") - calls_before
    assert calls < len(rows), "no model call was shared: the test did not test sharing"
    assert sorted(answers) == [(i, alone[i]) for i in range(len(rows))]


def test_v2_gives_each_row_the_same_float32_bits_alone_and_in_any_batch(
        url: str, rows: list[list[float]], alone: list[Answer], card: ModelCard) -> None:
    rng = random.Random("v2")
    sample = rng.sample(range(len(rows)), 500)
    with httpx.Client(base_url=url) as client:
        v2_alone = {i: v2_infer(client, card, [rows[i]]) for i in sample}
        for i, (labels, probabilities) in v2_alone.items():
            assert (labels[0], np.float32(probabilities[0][1])) == (alone[i][0], np.float32(alone[i][1]))  # /predict's, read as float32
        for batch in random_batches(len(sample), rng, largest=100):
            indices = [sample[k] for k in batch]
            labels, probabilities = v2_infer(client, card, [rows[i] for i in indices])
            assert labels == [v2_alone[i][0][0] for i in indices]
            assert probabilities == [v2_alone[i][1][0] for i in indices]
