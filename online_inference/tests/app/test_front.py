"""Spec: the server's front answers valid ``/predict`` bodies, the probes and the scrapes without the
web framework loaded; the first request it hands over builds the full application — once, even
when several arrive together, with the hot path answering meanwhile — and every hot answer is the
one the full application gives."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from online_inference.app.config import Settings
from online_inference.app.dataplane import DataPlane, create_plane
from online_inference.app.front import Front, create_front
from online_inference.app.main import build_app
from online_inference.bench.server import serve
from online_inference.card import ModelCard
from online_inference.tests.helpers import bundled_session, exchange, valid_row

HOT_GETS = ["/health", "/v2/health/live", "/metrics"]


@pytest.fixture
def plane(settings: Settings) -> DataPlane:
    plane = create_plane(settings, bundled_session)
    plane.load()
    return plane


def predict_body(card: ModelCard, rows: list[list[float]] | None = None) -> bytes:
    return orjson.dumps({"features": card.feature_names, "data": rows or [valid_row(card)]})


def families(exposition: bytes) -> set[bytes]:
    return {line.split()[2] for line in exposition.splitlines() if line.startswith(b"# TYPE")}


def mapped(pid: int, library: str) -> bool:
    return library in Path(f"/proc/{pid}/maps").read_text()


def test_a_started_server_loads_no_validation_framework_until_a_request_needs_it(card: ModelCard) -> None:
    with serve("onnx", cpus="0,1") as service:
        assert httpx.post(service.url + "/predict", content=predict_body(card)).status_code == 200
        for path in HOT_GETS:
            assert httpx.get(service.url + path).status_code == 200
        assert not mapped(service.process.pid, "pydantic_core")  # FastAPI needs it: neither is loaded
        bad = valid_row(card)
        bad[0] = -1
        answer = httpx.post(service.url + "/predict", content=predict_body(card, [bad]))
        assert answer.status_code == 400 and answer.json()["problems"][0]["feature"] == card.feature_names[0]
        assert mapped(service.process.pid, "pydantic_core")


@pytest.mark.parametrize("path", HOT_GETS)
def test_each_hot_answer_is_the_full_applications(settings: Settings, plane: DataPlane, path: str) -> None:
    front, full = Front(settings, plane), build_app(settings, plane)
    hot_status, hot_headers, hot_body = exchange(front, path, [b""], method="GET")
    status, headers, body = exchange(full, path, [b""], method="GET")
    assert (hot_status, hot_headers[b"content-type"]) == (status, headers[b"content-type"])
    if path == "/metrics":  # the counters move with each answer: once both have counted, the same series
        hot_body = exchange(front, path, [b""], method="GET")[2]
        assert families(hot_body) == families(body) and families(body)
    else:
        assert hot_body == body
    assert front.full.app is None


def test_a_valid_prediction_is_answered_without_building_the_full_application(settings: Settings, plane: DataPlane, card: ModelCard) -> None:
    front = Front(settings, plane)
    status, body = exchange(front, "/predict", [predict_body(card)])[::2]
    assert status == 200 and len(orjson.loads(body)["predictions"]) == 1
    assert front.full.app is None


def test_requests_handed_over_together_build_the_full_application_once(settings: Settings, plane: DataPlane, card: ModelCard) -> None:
    front = Front(settings, plane)
    builds: list[float] = []
    build = front.full.build

    def slow_build():  # type: ignore[no-untyped-def]
        builds.append(time.perf_counter())
        time.sleep(0.3)
        return build()

    front.full.build = slow_build

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://front") as client:
            handed_over = [client.get("/model") for _ in range(3)]
            hot = [client.post("/predict", content=predict_body(card)) for _ in range(3)]
            return await asyncio.gather(*handed_over, *hot)

    answers = asyncio.run(together())
    assert [a.status_code for a in answers] == [200] * 6
    assert answers[0].json()["name"] == card.name
    assert len(builds) == 1


def test_the_lifespan_starts_loading_the_model(settings: Settings) -> None:
    loaded = threading.Event()

    def loader():  # type: ignore[no-untyped-def]
        loaded.wait(10)
        return bundled_session()

    with TestClient(create_front(settings, loader)) as client:
        assert client.get("/health").json() == {"status": "loading"}
        loaded.set()
        deadline = time.monotonic() + 10
        while client.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.get("/health").json()["status"] == "ready"


def test_a_failed_build_answers_500_and_the_next_request_builds_again(settings: Settings, plane: DataPlane) -> None:
    front = Front(settings, plane)
    build, attempts = front.full.build, []

    def flaky_build():  # type: ignore[no-untyped-def]
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("simulated import failure")
        return build()

    front.full.build = flaky_build
    with TestClient(front, raise_server_exceptions=False) as client:
        assert client.get("/model").status_code == 500
        assert client.get("/model").status_code == 200
    assert len(attempts) == 2


def test_with_preload_the_full_application_is_built_once_the_model_is_ready(settings: Settings) -> None:
    front = create_front(settings.replace(PRELOAD_APP=True), bundled_session)
    with TestClient(front) as client:
        deadline = time.monotonic() + 20
        while front.full.app is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert front.full.app is not None
        assert client.get("/health").status_code == 200


def test_without_preload_nothing_is_built_before_a_request_needs_it(settings: Settings) -> None:
    front = create_front(settings, bundled_session)
    with TestClient(front) as client:
        front.plane.settled.wait(10)
        assert client.get("/health").status_code == 200
        time.sleep(0.2)
        assert front.full.app is None
