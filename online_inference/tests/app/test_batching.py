"""Spec: small requests that arrive together share one model call and each gets exactly its own
rows of the answer; a request alone is answered without waiting for company; a call waits one turn
of the loop, once, for requests the server has read whose work has not started, and they share
it; a failed call fails each of its requests and nothing else; a request cancelled meanwhile
takes nothing from it; a delivery that fails keeps no other request from its answer; a call
computes contributions when one of its requests asks for them, and the next call does not unless
asked again."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import orjson
from fastapi import FastAPI

from online_inference.app.dataplane.batching import Batcher
from online_inference.app.dataplane.plane import SHARED_CALL_ROWS
from online_inference.app.server import build_server
from online_inference.app.settings import Settings
from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_session, model_calls, server_port, valid_row


class Doubled:
    """A stand-in answer: the rows doubled, sliceable like a Prediction."""

    def __init__(self, X: np.ndarray):
        self.X = X

    def rows(self, start: int, stop: int) -> Doubled:
        return Doubled(self.X[start:stop])


class Model:
    def __init__(self, fail: bool = False):
        self.calls: list[int] = []
        self.explained: list[bool] = []
        self.fail = fail

    def __call__(self, X: np.ndarray, explain: bool) -> Doubled:
        self.calls.append(len(X))
        self.explained.append(explain)
        if self.fail:
            raise RuntimeError("model failed")
        return Doubled(X * 2)


def rows(*values: float) -> np.ndarray:
    return np.array([[v] for v in values], dtype=np.float32)


def test_requests_of_one_turn_share_one_call_and_each_gets_its_rows() -> None:
    model = Model()
    batcher = Batcher(model)

    async def together() -> list[Doubled]:
        return await asyncio.gather(*(batcher.submit(rows(*range(i, i + n))) for i, n in [(0, 1), (10, 3), (20, 2)]))

    answers = asyncio.run(together())
    assert model.calls == [6]
    assert [a.X[:, 0].tolist() for a in answers] == [[0], [20, 22, 24], [40, 42]]


def test_a_request_alone_is_answered_by_its_own_call() -> None:
    model = Model()
    batcher = Batcher(model)

    async def alone() -> list[float]:
        first = (await batcher.submit(rows(1))).X[:, 0].tolist()
        return first + (await batcher.submit(rows(2))).X[:, 0].tolist()

    assert asyncio.run(alone()) == [2, 4]
    assert model.calls == [1, 1]


def test_a_call_waits_one_turn_for_requests_on_their_way_and_they_share_it() -> None:
    model = Model()
    batcher = Batcher(model, more_coming=lambda: True)  # always more on the way: it waits once all the same

    async def two_turns() -> list[asyncio.Future[Doubled]]:
        first = batcher.submit(rows(1))
        await asyncio.sleep(0)  # the turn its call was to run in
        second = batcher.submit(rows(2))
        await asyncio.sleep(0)
        return [first, second]

    answers = asyncio.run(two_turns())
    assert model.calls == [2]
    assert [a.result().X[:, 0].tolist() for a in answers] == [[2], [4]]


def test_a_call_with_no_request_on_its_way_does_not_wait() -> None:
    model = Model()
    batcher = Batcher(model, more_coming=lambda: False)

    async def two_turns() -> None:
        batcher.submit(rows(1))
        await asyncio.sleep(0)
        await batcher.submit(rows(2))

    asyncio.run(two_turns())
    assert model.calls == [1, 1]


def test_a_request_the_server_reads_while_a_call_waits_to_run_shares_it(settings: Settings, card: ModelCard) -> None:
    """Through the server as it runs (its uvicorn, edge and front, on this test's loop, so that
    the test knows the loop's turns): the first request is read in one turn and starts its work in
    the next, where the second is read; the call the first scheduled waits for the second."""
    body = orjson.dumps({"features": card.feature_names, "data": [valid_row(card)]})
    request = b"POST /predict HTTP/1.1\r\nhost: service\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    server = build_server(settings.replace(HOST="127.0.0.1", PORT=0, GRPC_PORT=0, LOG_LEVEL="warning"), bundled_session)
    plane = server.config.app.plane

    async def two_requests() -> list[bytes]:
        serving = asyncio.create_task(server.serve())
        while not (server.started and plane.served is not None):
            await asyncio.sleep(0.01)  # the start, and the model's load in its thread
        connections = [await asyncio.open_connection("127.0.0.1", server_port(server)) for _ in range(2)]
        for _, writer in connections:
            writer.write(request)
            await asyncio.sleep(0)  # the next request comes a turn later
        heads = [await reader.readuntil(b"\r\n\r\n") for reader, _ in connections]
        for _, writer in connections:
            writer.close()
        server.should_exit = True
        await serving
        return heads

    calls_before = model_calls(plane)
    heads = asyncio.run(two_requests())
    assert [head.split(b"\r\n")[0] for head in heads] == [b"HTTP/1.1 200 OK"] * 2
    assert model_calls(plane) - calls_before == 1


def test_a_failed_call_fails_each_of_its_requests_and_the_next_call_runs() -> None:
    model = Model(fail=True)
    batcher = Batcher(model)

    async def together() -> list[object]:
        return await asyncio.gather(batcher.submit(rows(1)), batcher.submit(rows(2)), return_exceptions=True)

    assert [str(e) for e in asyncio.run(together())] == ["model failed", "model failed"]
    model.fail = False
    answers = asyncio.run(together())
    assert len(answers) == 2 and not any(isinstance(a, BaseException) for a in answers)
    assert model.calls == [2, 2]


def test_a_request_cancelled_before_the_call_takes_nothing_from_it() -> None:
    model = Model()
    batcher = Batcher(model)

    async def one_cancelled() -> list[float]:
        cancelled, kept = batcher.submit(rows(1)), batcher.submit(rows(2))
        cancelled.cancel()
        return (await kept).X[:, 0].tolist()

    assert asyncio.run(one_cancelled()) == [4]
    assert model.calls == [2]


async def post_together(app: FastAPI, bodies: list[bytes]) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        return await asyncio.gather(*(client.post(path, content=body) for path, body in bodies))  # type: ignore[misc]


def test_concurrent_predictions_share_calls_and_answer_as_if_alone(ready_app: FastAPI, card: ModelCard) -> None:
    low, high = ([getattr(f.training, end) for f in card.features] for end in ("min", "max"))
    examples = [valid_row(card), low, high, [(a + b) / 2 for a, b in zip(low, high)]]
    bodies = [("/predict", orjson.dumps({"features": card.feature_names, "data": [examples[i % 4]] * (1 + i % 3)}))
              for i in range(24)]
    alone = [r.content for r in asyncio.run(post_together(ready_app, bodies[:1]))]
    alone += [asyncio.run(post_together(ready_app, [b]))[0].content for b in bodies[1:]]
    calls_alone = model_calls(ready_app.plane)
    together = asyncio.run(post_together(ready_app, bodies))
    assert [r.content for r in together] == alone
    assert model_calls(ready_app.plane) - calls_alone < len(bodies)


def test_a_request_over_the_shared_size_gets_a_call_of_its_own(ready_app: FastAPI, card: ModelCard) -> None:
    big = orjson.dumps({"features": card.feature_names, "data": [valid_row(card)] * (SHARED_CALL_ROWS + 1)})
    small = orjson.dumps({"features": card.feature_names, "data": [valid_row(card)]})
    answers = asyncio.run(post_together(ready_app, [("/predict", big), ("/predict", small), ("/predict", small)]))
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert model_calls(ready_app.plane) == 2


def test_a_call_computes_contributions_when_one_of_its_requests_asks() -> None:
    model = Model()
    batcher = Batcher(model)

    async def two_turns() -> None:
        await asyncio.gather(batcher.submit(rows(1)), batcher.submit(rows(2), explain=True))
        await batcher.submit(rows(3))

    asyncio.run(two_turns())
    assert (model.calls, model.explained) == ([2, 1], [True, False])
