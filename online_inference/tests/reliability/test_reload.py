"""Spec (#34): a new model without a restart, against the real process under an open-loop load
(bench/openloop.py) at half its capacity, the service on core 0 and the load on core 1. The
models: the bundled one (1.0.0) and one exported at test time on the first 150 rows of the table
(2.0.0: other weights, so other probabilities for every row sent), served by an HTTP store in the
test (``MODEL_URI``, with ETags). The requests: a mix of ``/predict`` and V2 JSON inference of 1
to 10 rows of the training table.

- A swap: midway, the store gets the new model and a load (``POST
  /v2/repository/models/{name}/load``, no parameters: ``MODEL_URI`` again) swaps it in. No client
  sees a failure: every arrival is answered 200 (a reset, a timeout, a refused connection or any
  other status would be counted, by openloop's classes). Each answer is, byte for byte, one of
  the two models' answers for its rows (each model's taken alone, before and after the run), so
  no request mixes them, and no model call does (a request decoded against the old model and run
  on the new would match neither: its answer names the old version). Every answer that completed
  before the load was sent is the old model's; every request sent after the load answered, or
  after any answer of the new model, gets the new one's. Requests are answered while the load runs
  (it runs in a thread, not on the event loop).
- Failed loads (a wrong sha256, a store that is down, garbage bytes, garbage at ``MODEL_URI``),
  each while the load runs: each answers 400 with why, ``/health`` says it in ``last_load`` with
  the model served unchanged, ``model_loads_total{trigger="api",result="failed"}`` counts each,
  and nothing changes for clients: every arrival 200 with the answer the model gave before."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from online_inference.bench import openloop
from online_inference.bench.server import Service, serve
from online_inference.bench.wire import http_request
from online_inference.export.data import SHIPPED_TABLE
from online_inference.tests.helpers import bundled_card, metric_value
from online_inference.tests.stores import GARBAGE, ModelStore, export_other_model, sha256

pytestmark = pytest.mark.slow
CARD = bundled_card()
NAME = CARD.name
V1 = CARD.version
DURATION_S, SWAP_AT_S = 8.0, 3.0
FAILED_LOADS_AT_S = (1.5, 3.0, 4.5, 6.0)
REQUEST_ROWS = ((1, "predict"), (3, "predict"), (10, "predict"), (1, "v2"), (5, "v2"), (2, "predict"))


@dataclass
class Running:
    service: Service
    store: ModelStore
    v1: bytes
    v2: bytes

    def load(self, parameters: dict[str, str] | None = None) -> httpx.Response:
        """A load, as an operator's client sends it: again after a 503 with Retry-After (REST's
        repository requests are POSTs, which wait in the work queue with inference's, and a
        machine shared with other jobs may stall the service past MAX_QUEUE_SECONDS)."""
        body = {"parameters": parameters} if parameters else {}
        for _ in range(5):
            answer = httpx.post(f"{self.service.url}/v2/repository/models/{NAME}/load", json=body, timeout=60)
            if answer.status_code != 503 or "retry-after" not in answer.headers:
                return answer
            time.sleep(0.1)  # pacing: a shed load is sent again
        return answer

    def health(self) -> dict[str, Any]:
        return httpx.get(self.service.url + "/health").json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    where = tmp_path_factory.mktemp("reload")
    v1, v2 = (Path(__file__).resolve().parents[2] / "model" / "heart.onnx").read_bytes(), export_other_model(where, "2.0.0")
    with ModelStore().running() as store:
        store.put("/heart.onnx", v1)
        store.put("/v2.onnx", v2)
        store.put("/garbage.onnx", GARBAGE)
        env = {**openloop.SERVER_KEEP_ALIVE, "MODEL_URI": f"{store.url}/heart.onnx", "MODEL_LOAD_FROM_REQUEST": "true",
               "MODEL_CACHE_DIR": str(where / "cache"), "MODEL_LOAD_ATTEMPTS": "2", "MODEL_LOAD_BACKOFF_SECONDS": "0.05"}
        with serve("onnx", cpus="0", env=env) as service:
            yield Running(service, store, v1, v2)


def table_rows() -> list[list[float]]:
    with SHIPPED_TABLE.open() as table:
        return [[float(row[name]) for name in CARD.feature_names] for row in csv.DictReader(table)]


def requests(url: str) -> list[bytes]:
    """The mix, each request of other rows of the table."""
    rows, made, start = table_rows(), [], 0
    for count, kind in REQUEST_ROWS:
        chosen, start = rows[start:start + count], start + count
        if kind == "predict":
            made.append(http_request(f"{url}/predict", json.dumps({"features": CARD.feature_names, "data": chosen}).encode()))
        else:
            tensor = {"name": CARD.input_name, "shape": [count, len(CARD.features)], "datatype": "FP32",
                      "data": [v for row in chosen for v in row]}
            made.append(http_request(f"{url}/v2/models/{NAME}/infer", json.dumps({"inputs": [tensor]}).encode()))
    return made


def answers_alone(url: str, raw: list[bytes]) -> list[bytes]:
    """Each request's answer, sent alone (httpx): the model served now."""
    found = []
    for request in raw:
        head, _, body = request.partition(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        answer = httpx.post(url + path, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        found.append(answer.content)
    return found


class Keeping(openloop.Generator):
    """openloop's generator, keeping each answer's body (by arrival)."""

    made: list[Keeping] = []

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.bodies: dict[int, bytes] = {}
        Keeping.made.append(self)

    def answered(self, connection: openloop.Connection, head: Any) -> None:
        if head.length is not None:
            self.bodies[connection.current] = bytes(connection.buffer[connection.body_start:connection.body_start + head.length])
        super().answered(connection, head)


def mix_capacity(url: str, raw: list[bytes]) -> float:
    """The closed-loop capacity (wrk, 32 connections) of the mix: each request's own, combined as
    the mix sends them (in equal shares: the time one of each takes)."""
    return len(raw) / sum(1 / openloop.capacity(url, request, connections=32, seconds=2, cpus="1") for request in raw)


def under_load(running: Running, raw: list[bytes], during: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Keeping, Any]:
    """An open-loop run of the mix at half its capacity, with ``during(now)`` called in this
    thread while it runs (``now``: the generator's clock); the result, the generator, and what
    ``during`` returned."""
    url = running.service.url
    capacity = mix_capacity(url, raw)
    Keeping.made.clear()
    monkeypatch.setattr(openloop, "Generator", Keeping)
    result: list[Any] = []
    load = threading.Thread(target=lambda: result.append(openloop.run(
        url, raw, rate_per_s=capacity / 2, duration_s=DURATION_S, timeout_s=5, max_connections=256, warm_connections=32, core=1)))
    load.start()
    while not Keeping.made:
        time.sleep(0.01)  # polling: the generator starts
    generator = Keeping.made[0]
    done = during(generator.now)
    load.join(DURATION_S + 30)
    assert result, "the load did not end"
    return result[0], generator, done


def test_a_swap_under_load_loses_nothing_and_never_mixes_the_models(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    url = running.service.url
    running.store.put("/heart.onnx", running.v1)
    if running.health().get("model", {}).get("version") != V1:
        assert running.load().status_code == 200
    raw = requests(url)
    old = answers_alone(url, raw)
    ok_before = metric_value(url, "model_loads_total", trigger="api", result="ok")

    def swap(now: Any) -> tuple[float, float, int]:
        while now() < SWAP_AT_S:
            time.sleep(0.01)  # pacing: the swap comes midway
        running.store.put("/heart.onnx", running.v2)
        sent = now()
        status = running.load().status_code
        return sent, now(), status

    result, generator, (load_sent, load_done, status) = under_load(running, raw, swap, monkeypatch)
    assert status == 200
    new = answers_alone(url, raw)
    assert running.health()["model"] == {"name": NAME, "version": "2.0.0", "sha256": sha256(running.v2)}
    assert metric_value(url, "model_loads_total", trigger="api", result="ok") == ok_before + 1
    for before, after in zip(old, new):
        assert_every_row_differs(before, after)

    counts = result.summary()["outcomes"]
    assert counts == {"200": result.offered}, (f"clients saw failures: {failures(result)}; "
                                               f"the load from {load_sent:.2f} s to {load_done:.2f} s")
    records, which = result.records, {}
    for arrival, request in enumerate(records.request):
        body = generator.bodies[arrival]
        assert body in (old[request], new[request]), f"arrival {arrival}: neither model's answer for its rows: {body[:300]!r}"
        which[arrival] = "old" if body == old[request] else "new"
    assert {"old", "new"} == set(which.values()), counts
    during = [a for a, done in enumerate(records.done) if load_sent < done < load_done]
    assert during, f"no answer while the load ran ({(load_done - load_sent) * 1000:.0f} ms): it held the event loop"
    assert all(which[a] == "old" for a, done in enumerate(records.done) if done < load_sent), \
        "an answer that came before the load was sent is the new model's"
    assert all(which[a] == "new" for a, sent in enumerate(records.sent) if sent > load_done), \
        "a request sent after the swap got the old model"
    first_new = min(records.done[a] for a, w in which.items() if w == "new")
    late_old = [a for a, sent in enumerate(records.sent) if sent > first_new and which[a] == "old"]
    assert late_old == [], f"{len(late_old)} requests sent after the new model answered got the old one"


def failures(result: Any) -> str:
    """What the clients saw, and when the failures were (by their time on the clock): a stall of a
    machine shared with other jobs shows far from the loads."""
    r = result.records
    times = [scheduled for scheduled, outcome in zip(r.scheduled, r.outcome) if outcome != "200"]
    when = f", from {min(times):.2f} s to {max(times):.2f} s" if times else ""
    return f"{result.summary()['outcomes']} at {result.rate_per_s:.0f}/s{when}"


def assert_every_row_differs(old: bytes, new: bytes) -> None:
    """The two models answer every row of the request differently (so a mix would show)."""
    before, after = json.loads(old), json.loads(new)
    if "predictions" in before:
        pairs = [(b["probability"], a["probability"]) for b, a in zip(before["predictions"], after["predictions"])]
    else:
        (b,), (a,) = ([o["data"] for o in answer["outputs"] if o["name"] == CARD.probability_output]
                      for answer in (before, after))
        pairs = list(zip(b, a))
    assert pairs and all(x != y for x, y in pairs), pairs


def test_failed_loads_under_load_change_nothing_for_clients(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    url = running.service.url
    raw = requests(url)
    served = running.health()["model"]
    expected = answers_alone(url, raw)
    failed_before = metric_value(url, "model_loads_total", trigger="api", result="failed")
    cases = [  # parameters (None: MODEL_URI, which the store turns to garbage), what the answer says, what the store serves
        ({"uri": f"{running.store.url}/v2.onnx", "sha256": "0" * 64}, "sha256 mismatch"),
        ({"uri": "http://127.0.0.1:9/heart.onnx", "sha256": sha256(running.v2)}, "ConnectError"),
        ({"uri": f"{running.store.url}/garbage.onnx", "sha256": sha256(GARBAGE)}, "not a loadable ONNX model"),
        (None, "not a loadable ONNX model"),
    ]

    def fail(now: Any) -> list[tuple[int, str, dict[str, Any]]]:
        seen = []
        for at, (parameters, _) in zip(FAILED_LOADS_AT_S, cases):
            while now() < at:
                time.sleep(0.01)  # pacing: the failed loads come one by one through the run
            kept = running.store.artifacts["/heart.onnx"]
            if parameters is None:
                running.store.put("/heart.onnx", GARBAGE)
            answer = running.load(parameters)
            running.store.put("/heart.onnx", kept)
            seen.append((answer.status_code, answer.json()["error"], running.health()))
        return seen

    result, generator, seen = under_load(running, raw, fail, monkeypatch)
    for (status, error, health), (_, why) in zip(seen, cases):
        assert status == 400 and error.startswith(f"failed to load {NAME!r}") and why in error, error
        assert health["status"] == "ready" and health["model"] == served, health
        assert health["last_load"]["result"] == "failed" and why in health["last_load"]["reason"], health
    assert metric_value(url, "model_loads_total", trigger="api", result="failed") == failed_before + len(cases)
    counts = result.summary()["outcomes"]
    assert counts == {"200": result.offered}, f"clients saw failures: {failures(result)}; the loads at {FAILED_LOADS_AT_S} s"
    changed = [a for a, request in enumerate(result.records.request) if generator.bodies[a] != expected[request]]
    assert changed == [], f"{len(changed)} answers changed, the first: {generator.bodies[changed[0]][:300]!r}"
    assert running.health()["model"] == served
