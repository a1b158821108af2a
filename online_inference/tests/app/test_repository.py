"""Spec (#34): Triton's model repository API over REST, in process. The index lists the model with
its version and state; an unload makes it not ready (``/health`` 503 ``unloaded``, V2 ready 503,
nothing answers inference) and a load brings it back; a load fetches ``MODEL_URI`` again, or the
``uri`` and ``sha256`` its parameters name where ``MODEL_LOAD_FROM_REQUEST`` allows it (both,
checked), and swaps the new model in whole: V2 metadata, ``/model``, ``/health`` and the metrics
name it, and the old version's paths answer 404. A failed load leaves the model served, answers 400
with why, and ``/health``'s ``last_load`` and ``model_loads_total`` say so. Requests decoded
against a model finish on it: a shared model call never mixes rows of two models. A load runs off
the event loop: the service answers while it runs. The poll (``MODEL_POLL_SECONDS``) loads a
changed ``MODEL_URI``, tries a refused artifact once, and leaves an unloaded model unloaded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from online_inference.app.compose import create_app
from online_inference.app.model.session import ModelSession
from online_inference.app.settings import BUNDLED_MODEL, Settings
from online_inference.tests.helpers import bundled_card, bundled_session, live_server, loaded, valid_row, wait_until
from online_inference.tests.stores import GARBAGE, bundled_bytes_with, sha256

CARD = bundled_card()
NAME, VERSION = CARD.name, CARD.version
V2_BYTES = bundled_bytes_with(version="2.0.0")
ROWS = {"features": CARD.feature_names, "data": [valid_row(CARD)]}


def metric(client: TestClient, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


@pytest.fixture
def client_from_requests(tmp_path: Path) -> Iterator[TestClient]:
    """The service, its loads allowed to name their artifact."""
    app = create_app(Settings(environment={}, MODEL_LOAD_FROM_REQUEST=True, MODEL_CACHE_DIR=tmp_path / "cache",
                                  MODEL_LOAD_ATTEMPTS=2, MODEL_LOAD_BACKOFF_SECONDS=0.01), loader=bundled_session)
    with TestClient(app) as client:
        assert loaded(app.plane, 10)
        yield client


def load(client: TestClient, parameters: dict[str, Any] | None = None, name: str = NAME) -> httpx.Response:
    return client.post(f"/v2/repository/models/{name}/load", json={} if parameters is None else {"parameters": parameters})


def artifact(tmp_path: Path, payload: bytes, name: str = "model.onnx") -> dict[str, str]:
    path = tmp_path / name
    path.write_bytes(payload)
    return {"uri": f"file://{path}", "sha256": sha256(payload)}


def test_index_unload_and_load(client: TestClient) -> None:
    assert client.post("/v2/repository/index").json() == [{"name": NAME, "version": VERSION, "state": "READY"}]
    assert client.post("/v2/repository/index", json={"ready": True}).json() == [{"name": NAME, "version": VERSION, "state": "READY"}]
    unloaded = client.post(f"/v2/repository/models/{NAME}/unload", json={"parameters": {"unload_dependents": False}})
    assert (unloaded.status_code, unloaded.content) == (200, b"")
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "unloaded", health.json()
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get(f"/v2/models/{NAME}/ready").status_code == 503
    assert client.post("/predict", json=ROWS).status_code == 503
    assert client.get("/model").status_code == 503
    (entry,) = client.post("/v2/repository/index").json()
    assert (entry["state"], entry["version"]) == ("UNAVAILABLE", VERSION) and "repository API" in entry["reason"]
    assert client.post("/v2/repository/index", json={"ready": True}).json() == []
    assert metric(client, "model_ready") == 0 and metric(client, "model_info") is None
    loaded_again = load(client)
    assert (loaded_again.status_code, loaded_again.content) == (200, b"")
    body = client.get("/health").json()
    assert body["status"] == "ready" and body["last_load"]["result"] == "ok" and body["last_load"]["trigger"] == "api", body
    assert client.post("/predict", json=ROWS).status_code == 200
    assert metric(client, "model_loads_total", trigger="api", result="ok") == 1
    assert metric(client, "model_loads_total", trigger="start", result="ok") == 1


def test_a_load_swaps_the_model_whole_and_the_old_version_is_404(client_from_requests: TestClient, tmp_path: Path) -> None:
    client = client_from_requests
    assert client.get(f"/v2/models/{NAME}/versions/{VERSION}").status_code == 200
    assert load(client, artifact(tmp_path, V2_BYTES)).status_code == 200
    assert client.get(f"/v2/models/{NAME}/versions/{VERSION}").status_code == 404
    assert client.post(f"/v2/models/{NAME}/versions/{VERSION}/infer", json={"inputs": []}).status_code == 404
    assert client.get(f"/v2/models/{NAME}/versions/2.0.0").json()["versions"] == ["2.0.0"]
    assert client.get(f"/v2/models/{NAME}").json()["versions"] == ["2.0.0"]
    assert client.get("/model").json()["version"] == "2.0.0"
    assert client.post("/predict", json=ROWS).json()["model"]["version"] == "2.0.0"
    assert client.get("/health").json()["model"] == {"name": NAME, "version": "2.0.0", "sha256": sha256(V2_BYTES)}
    assert metric(client, "model_info", version="2.0.0", sha256=sha256(V2_BYTES)) == 1
    assert metric(client, "model_info", version=VERSION) is None
    assert client.post("/v2/repository/index").json() == [{"name": NAME, "version": "2.0.0", "state": "READY"}]


@pytest.mark.parametrize("case", ["wrong sha256", "garbage bytes", "a store that is down", "another model's name", "no file"])
def test_a_failed_load_keeps_the_model_and_says_why(client_from_requests: TestClient, tmp_path: Path, case: str) -> None:
    client = client_from_requests
    parameters, why = {
        "wrong sha256": ({**artifact(tmp_path, V2_BYTES, "v2.onnx"), "sha256": "0" * 64}, "sha256 mismatch"),
        "garbage bytes": (artifact(tmp_path, GARBAGE, "garbage.onnx"), "not a loadable ONNX model"),
        "a store that is down": ({"uri": "http://127.0.0.1:9/heart.onnx", "sha256": sha256(V2_BYTES)}, "ConnectError"),
        "another model's name": (artifact(tmp_path, bundled_bytes_with(name="other"), "other.onnx"), "the artifact is model 'other'"),
        "no file": ({"uri": f"file://{tmp_path}/absent.onnx", "sha256": "0" * 64}, "No such file"),
    }[case]
    before = client.post("/predict", json=ROWS).content
    answer = load(client, parameters)
    assert answer.status_code == 400 and answer.json()["error"].startswith(f"failed to load {NAME!r}: ") and why in answer.json()["error"]
    health = client.get("/health")
    body = health.json()
    assert health.status_code == 200 and body["model"]["version"] == VERSION, body
    assert body["last_load"]["result"] == "failed" and why in body["last_load"]["reason"], body
    assert client.post("/predict", json=ROWS).content == before
    assert metric(client, "model_loads_total", trigger="api", result="failed") == 1
    assert client.post("/v2/repository/index").json() == [{"name": NAME, "version": VERSION, "state": "READY"}]


def test_what_a_load_may_ask(client: TestClient, client_from_requests: TestClient, tmp_path: Path) -> None:
    refused = load(client, artifact(tmp_path, V2_BYTES))
    assert refused.status_code == 400 and "MODEL_LOAD_FROM_REQUEST is off" in refused.json()["error"]
    assert load(client, {"config": "{}"}).status_code == 400
    assert load(client, {}, name="no-such-model").status_code == 404
    assert client.post("/v2/repository/models/no-such-model/unload").status_code == 404
    assert client.post(f"/v2/repository/models/{NAME}/unload", json={"parameters": {"force": True}}).status_code == 400
    assert client.post("/v2/repository/index", json={"ready": "maybe"}).status_code == 400
    assert client.post("/v2/repository/index", content=b"[", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/v2/repository/index", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    assert client.get("/health").json()["status"] == "ready"
    assert "last_load" not in client.get("/health").json(), "a refused request loads nothing"
    half = load(client_from_requests, {"uri": artifact(tmp_path, V2_BYTES)["uri"]})
    assert half.status_code == 400 and "both" in half.json()["error"]


def test_a_shared_call_never_mixes_two_models(ready_app: Any) -> None:
    """Requests decoded against the old model and against the new one, in one turn of the loop
    after the swap: each model gets a call of its own requests' rows."""
    plane = ready_app.plane
    old = plane.served
    new = plane.build(ModelSession(V2_BYTES))
    calls: dict[str, list[int]] = {"old": [], "new": []}
    for which, served in (("old", old), ("new", new)):
        run = served.session.run
        served.session.run = lambda X, explain=False, run=run, which=which: calls[which].append(len(X)) or run(X, explain)
    X = np.array([valid_row(CARD)], np.float32)

    async def one_turn() -> list[Any]:
        plane.publish(new)
        return await asyncio.gather(plane.predict(old, X), plane.predict(new, np.repeat(X, 2, 0)), plane.predict(old, np.repeat(X, 3, 0)))

    answers = asyncio.run(one_turn())
    assert calls == {"old": [4], "new": [2]}
    assert [len(a.labels) for a in answers] == [1, 2, 3]
    assert plane.served is new


def test_a_load_runs_off_the_event_loop() -> None:
    """While a load waits (its loader held), the service answers: inference on the old model, /health."""
    gate, calls = threading.Event(), []

    def held_loader() -> ModelSession:
        calls.append(1)
        if len(calls) > 1:
            assert gate.wait(30)
        return ModelSession(V2_BYTES if len(calls) > 1 else BUNDLED_MODEL.read_bytes())

    with live_server(loader=held_loader) as url:
        answer: list[httpx.Response] = []
        loading = threading.Thread(target=lambda: answer.append(httpx.post(f"{url}/v2/repository/models/{NAME}/load", timeout=30)))
        loading.start()
        wait_until(lambda: len(calls) == 2, timeout=10)
        started = time.monotonic()
        for _ in range(20):
            assert httpx.post(f"{url}/predict", json=ROWS).json()["model"]["version"] == VERSION
        assert httpx.get(f"{url}/health").json()["model"]["version"] == VERSION
        assert time.monotonic() - started < 5 and loading.is_alive()
        gate.set()
        loading.join(30)
        assert answer[0].status_code == 200
        assert httpx.post(f"{url}/predict", json=ROWS).json()["model"]["version"] == "2.0.0"


def test_the_poll_loads_a_changed_artifact_once_and_leaves_an_unloaded_model_alone(tmp_path: Path) -> None:
    model = tmp_path / "heart.onnx"
    model.write_bytes(BUNDLED_MODEL.read_bytes())
    app = create_app(Settings(environment={}, MODEL_URI=str(model), MODEL_POLL_SECONDS=0.05))
    with TestClient(app) as client:
        assert loaded(app.plane, 10)

        def version() -> str:
            return client.get("/health").json().get("model", {}).get("version", "")

        assert version() == VERSION
        time.sleep(0.3)  # pacing: a few polls of an unchanged file
        assert metric(client, "model_loads_total", trigger="poll", result="ok") is None
        (tmp_path / "next").write_bytes(V2_BYTES)
        (tmp_path / "next").replace(model)
        wait_until(lambda: version() == "2.0.0", timeout=10)
        assert client.get("/health").json()["last_load"]["trigger"] == "poll"
        (tmp_path / "next").write_bytes(GARBAGE)
        (tmp_path / "next").replace(model)
        wait_until(lambda: metric(client, "model_loads_total", trigger="poll", result="failed") == 1, timeout=10)
        time.sleep(0.3)  # pacing: polls of the refused artifact, which is not tried again
        assert metric(client, "model_loads_total", trigger="poll", result="failed") == 1
        body = client.get("/health").json()
        assert body["model"]["version"] == "2.0.0" and "not a loadable ONNX model" in body["last_load"]["reason"], body
        assert client.post(f"/v2/repository/models/{NAME}/unload").status_code == 200
        (tmp_path / "next").write_bytes(BUNDLED_MODEL.read_bytes())
        (tmp_path / "next").replace(model)
        time.sleep(0.3)  # pacing: polls while unloaded, which load nothing
        assert client.get("/health").json()["status"] == "unloaded"
        assert load(client).status_code == 200
        assert version() == VERSION
